// trainer_state.json: writing a run's position and reading it back with every field type- and range-checked
// against the resuming run. Never touches a model, an optimizer or the data.
#include <prefopt/train/trainer_state.h>

#include <cmath>
#include <sstream>

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

namespace prefopt::train {

namespace {

using json = nlohmann::json;

// Typed access to trainer_state.json's fields, with errors naming the file and the field.
class Reader {
 public:
  Reader(const json& root, std::string path) : root_(root), path_(std::move(path)) {}
  const json& at(const json& object, const std::string& key, const std::string& field) const {
    TORCH_CHECK(object.is_object() && object.contains(key), path_, ": missing field \"", field, "\"");
    return object.at(key);
  }
  int64_t integer(const json& object, const std::string& key, const std::string& field) const {
    const json& v = at(object, key, field);
    TORCH_CHECK(v.is_number_integer(), path_, ": field \"", field, "\" must be an integer, got ", v.dump(0));
    return v.get<int64_t>();
  }
  int64_t integer(const std::string& key) const { return integer(root_, key, key); }
  void range(const std::string& field, int64_t value, int64_t lo, int64_t hi_inclusive, const char* why) const {
    TORCH_CHECK(value >= lo && value <= hi_inclusive, path_, ": field \"", field, "\" is ", value, "; expected ", lo,
                " to ", hi_inclusive, " (", why, ")");
  }
  const std::string& path() const { return path_; }

 private:
  const json& root_;
  std::string path_;
};

}  // namespace

std::string trainer_state_json(const TrainerState& s, const RunIdentity& id) {
  json st;
  st["global_step"] = s.global_step;
  st["schedule_step"] = s.global_step;
  st["epoch"] = s.epoch;
  st["position"] = s.position;
  st["order_ready"] = s.order_ready;
  st["order"] = s.order;
  std::ostringstream rng;
  rng << s.shuffle_rng;
  st["shuffle_rng"] = rng.str();
  json acc = json::object();
  for (const auto& [name, sw] : s.log_accumulator.sums) acc[name] = {sw.first, sw.second};
  st["log_accumulators"] = acc;
  st["log_accumulated_steps"] = s.log_accumulated_steps;
  if (s.loss_scale > 0) {
    st["loss_scaler"] = {{"scale", s.loss_scale},
                         {"growth_tracker", s.loss_scale_growth_tracker},
                         {"skipped_steps", s.skipped_steps}};
  }
  st["check"] = {{"loss", id.loss},
                 {"batch_size", id.batch_size},
                 {"gradient_accumulation_steps", id.gradient_accumulation_steps},
                 {"dataset_size", id.dataset_size},
                 {"dataset_fingerprint", id.dataset_fingerprint},
                 {"total_steps", id.total_steps}};
  return st.dump(1) + "\n";
}

SavedTrainerState parse_trainer_state(const std::string& text, const std::string& path, const RunIdentity& now) {
  json root;
  try {
    // A checkpoint's state is a few levels deep; a deeper document is not one of ours (and must not be printed).
    root = json::parse(text, [](int depth, json::parse_event_t, json&) {
      TORCH_CHECK(depth <= 8, "nesting deeper than 8 levels");
      return true;
    });
  } catch (const json::exception& e) {
    TORCH_CHECK(false, path, ": invalid JSON: ", e.what());
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, path, ": not a trainer state: ", e.msg());
  }
  TORCH_CHECK(root.is_object(), path, ": expected a JSON object");
  Reader r(root, path);
  SavedTrainerState out;
  TrainerState& s = out.state;

  const json& check = r.at(root, "check", "check");
  auto expect = [&](const char* key, const json& value) {
    const json& saved = r.at(check, key, std::string("check.") + key);
    TORCH_CHECK(saved == value, "resume: the checkpoint (", path, ") was written with ", key, " = ", saved.dump(),
                " but this run has ", value.dump());
  };
  expect("loss", now.loss);
  expect("batch_size", now.batch_size);
  expect("gradient_accumulation_steps", now.gradient_accumulation_steps);
  expect("dataset_size", now.dataset_size);
  expect("dataset_fingerprint", now.dataset_fingerprint);
  out.total_steps = r.integer(check, "total_steps", "check.total_steps");
  TORCH_CHECK(out.total_steps >= 1, path, ": field \"check.total_steps\" is ", out.total_steps, "; expected >= 1");

  s.global_step = r.integer("global_step");
  r.range("global_step", s.global_step, 0, out.total_steps, "the steps of the run that wrote it");
  TORCH_CHECK(s.global_step < now.total_steps, "resume: the checkpoint (", path, ") is at step ", s.global_step,
              " and this run stops at step ", now.total_steps, ": nothing is left to train (raise max_steps)");
  const int64_t schedule_step = r.integer("schedule_step");
  TORCH_CHECK(schedule_step == s.global_step, path, ": field \"schedule_step\" is ", schedule_step,
              "; expected global_step (", s.global_step, ")");
  s.epoch = r.integer("epoch");
  r.range("epoch", s.epoch, 0, s.global_step, "at most one epoch per step");
  s.position = r.integer("position");
  r.range("position", s.position, 0, now.micro_batches_per_epoch - 1, "micro-batches of an epoch");
  const json& ready = r.at(root, "order_ready", "order_ready");
  TORCH_CHECK(ready.is_boolean(), path, ": field \"order_ready\" must be a bool, got ", ready.dump(0));
  s.order_ready = ready.get<bool>();
  const json& order = r.at(root, "order", "order");
  TORCH_CHECK(order.is_array(), path, ": field \"order\" must be an array");
  if (s.order_ready) {
    TORCH_CHECK(static_cast<int64_t>(order.size()) == now.dataset_size, path, ": field \"order\" has ", order.size(),
                " entries; expected the dataset size ", now.dataset_size);
    std::vector<bool> seen(static_cast<size_t>(now.dataset_size), false);
    for (size_t i = 0; i < order.size(); ++i) {
      const json& v = order[i];
      TORCH_CHECK(v.is_number_integer(), path, ": field \"order[", i, "]\" must be an integer");
      const int64_t idx = v.get<int64_t>();
      TORCH_CHECK(idx >= 0 && idx < now.dataset_size && !seen[static_cast<size_t>(idx)], path, ": field \"order[", i,
                  "]\" is ", idx, "; the order must be a permutation of 0..", now.dataset_size - 1);
      seen[static_cast<size_t>(idx)] = true;
      s.order.push_back(idx);
    }
  }
  const json& rng_text = r.at(root, "shuffle_rng", "shuffle_rng");
  TORCH_CHECK(rng_text.is_string(), path, ": field \"shuffle_rng\" must be a string");
  std::istringstream rng(rng_text.get<std::string>());
  rng >> s.shuffle_rng;
  TORCH_CHECK(!rng.fail(), path, ": field \"shuffle_rng\" is not a std::mt19937_64 state");
  const json& acc = r.at(root, "log_accumulators", "log_accumulators");
  TORCH_CHECK(acc.is_object(), path, ": field \"log_accumulators\" must be an object");
  for (const auto& [name, sw] : acc.items()) {
    TORCH_CHECK(sw.is_array() && sw.size() == 2 && sw.at(0).is_number() && sw.at(1).is_number(), path,
                ": field \"log_accumulators.", name, "\" must be [sum, weight]");
    s.log_accumulator.sums[name] = {sw.at(0).get<double>(), sw.at(1).get<double>()};
  }
  s.log_accumulated_steps = r.integer("log_accumulated_steps");
  r.range("log_accumulated_steps", s.log_accumulated_steps, 0, s.global_step, "steps since the last log");
  // Only fp16 runs write the scaler; the Trainer checks that a run that needs it finds it.
  if (root.contains("loss_scaler")) {
    const json& scaler = root.at("loss_scaler");
    TORCH_CHECK(scaler.is_object(), path, ": field \"loss_scaler\" must be an object");
    const json& scale = r.at(scaler, "scale", "loss_scaler.scale");
    TORCH_CHECK(scale.is_number() && std::isfinite(scale.get<double>()) && scale.get<double>() > 0, path,
                ": field \"loss_scaler.scale\" must be a finite number > 0, got ", scale.dump(0));
    s.loss_scale = scale.get<double>();
    s.loss_scale_growth_tracker = r.integer(scaler, "growth_tracker", "loss_scaler.growth_tracker");
    r.range("loss_scaler.growth_tracker", s.loss_scale_growth_tracker, 0, s.global_step, "clean steps in a row");
    s.skipped_steps = r.integer(scaler, "skipped_steps", "loss_scaler.skipped_steps");
    r.range("loss_scaler.skipped_steps", s.skipped_steps, 0, s.global_step, "steps of the run");
  }
  return out;
}

}  // namespace prefopt::train
