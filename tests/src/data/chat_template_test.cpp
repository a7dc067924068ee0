// Tests of the native chat-template engine: every construct it supports renders what jinja2 3.1.6 renders under
// transformers 5.24's settings (each expected string below was produced by transformers' own
// render_jinja_template on the same template and inputs, TZ=UTC; the tables use R"T(...)T" / R"E(...)E" so a
// script can re-check them), the documented error messages with their template lines, raise_exception,
// continue_final_message, generation spans, apply_chat_template's input handling, and concurrent rendering.
#include <gtest/gtest.h>
#include <prefopt/data/chat_template.h>

#include <cstdlib>
#include <ctime>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace prefopt::data {
namespace {

// The variables every table case sees (as variables_json) and its messages.
const char* const kVars =
    R"V({"s": "  Hello World  ", "n": 7, "f": 2.5, "lst": [3, 1, 2], "words": ["b", "A", "c", "a"],
  "d": {"b": 1, "a": 2, "c": {"x": [1, 2]}}, "t": true, "nothing": null, "uni": "h\u00e9llo w\u00f6rld",
  "users": [{"name": "bob", "age": 30}, {"name": "Alice", "age": 25}, {"name": "carol", "age": 30}],
  "text": "line1\nline2\n\nline4", "e": "", "mixed": [1, "a", null, true, 2.0, [1, [2]], {"k": "v'q"}],
  "fl": [1.0, 0.1, 1e-05, 1e16, 123.456]})V";
const char* const kMessages = R"M([{"role": "system", "content": "Sys"}, {"role": "user", "content": "Hello"},
  {"role": "assistant", "content": "Hi there"}, {"role": "user", "content": "Bye"}])M";

struct Case {
  const char* tpl;
  const char* expected;
};

std::string render(const std::string& tpl, const std::string& vars = kVars, const std::string& messages = kMessages) {
  ChatTemplate t(tpl);
  ChatTemplateInputs in;
  in.messages_json = messages;
  in.variables_json = vars;
  in.special_tokens = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
  in.now = 1700000000;  // 2023-11-14 22:13:20 UTC
  return t.render(in).text;
}

void check_table(const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    try {
      EXPECT_EQ(render(c.tpl), c.expected) << "template: " << c.tpl;
    } catch (const ChatTemplateError& e) {
      ADD_FAILURE() << "template: " << c.tpl << "\nraised: " << e.what();
    }
  }
}

// The message of the ChatTemplateError that rendering (or parsing) `tpl` raises.
std::string error_of(const std::string& tpl, const std::string& vars = kVars, const std::string& messages = kMessages) {
  try {
    render(tpl, vars, messages);
  } catch (const ChatTemplateError& e) {
    return e.what();
  }
  return "(no error)";
}

class ChatTemplateTest : public ::testing::Test {
 protected:
  // strftime_now reads local time; the expectations were made in UTC. TZ is restored afterwards.
  void SetUp() override {
    const char* tz = std::getenv("TZ");
    saved_tz_ = tz ? std::optional<std::string>(tz) : std::nullopt;
    setenv("TZ", "UTC", 1);
    tzset();
  }
  void TearDown() override {
    if (saved_tz_)
      setenv("TZ", saved_tz_->c_str(), 1);
    else
      unsetenv("TZ");
    tzset();
  }

 private:
  std::optional<std::string> saved_tz_;
};

TEST_F(ChatTemplateTest, TemplateTextAndWhitespaceControl) {
  check_table({
      {R"T(plain text)T", R"E(plain text)E"},
      {"a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc\n", "a\nb\nc"},  // CRLF normalised, trailing newline dropped
      {R"T(a  {%- if true %}b{% endif %}  
  c)T",
       R"E(ab  
  c)E"},
      {R"T(a
  {%- if true -%}  
  b  
  {%- endif -%}
  c)T",
       R"E(abc)E"},
      {R"T(  {%+ if true %}x{% endif %}
  {%- if true +%}
 y{% endif %})T",
       R"E(  x
 y)E"},
      {R"T(line
    {% for x in [1, 2] %}
    item{{ x }}
    {% endfor %}
end)T",
       R"E(line
    item1
    item2
end)E"},
      {R"T({{-5}}|{{ -5 }}|{{- 5 -}}|)T", R"E(5|-5|5|)E"},
      {R"T(a {{ n }} {{- n }} b)T", R"E(a 77 b)E"},
      {R"T(  {# c #}  
x
  {#- c -#}  
y  {#+ c +#}
z)T",
       R"E(  
xy  
z)E"},
      {R"T({% raw %}{% if %}{{ }}{% endraw %}|{% raw %}
  a
{% endraw %}|  {% raw %}b{% endraw %})T",
       R"E({% if %}{{ }}|
  a
|  b)E"},
  });
}

TEST_F(ChatTemplateTest, LiteralsAndPythonStr) {
  check_table({
      {R"T({{ s }}|{{ n }}|{{ f }}|{{ t }}|{{ nothing }}|{{ undefined_var }}|{{ e }})T",
       R"E(  Hello World  |7|2.5|True|None||)E"},
      {R"T({{ lst }}|{{ d }}|{{ mixed }}|{{ fl }})T",
       R"E([3, 1, 2]|{'b': 1, 'a': 2, 'c': {'x': [1, 2]}}|[1, 'a', None, True, 2.0, [1, [2]], {'k': "v'q"}]|[1.0, 0.1, 1e-05, 1e+16, 123.456])E"},
      {R"T({{ 1e16 }} {{ 1.5e15 }} {{ 0.0001 }} {{ 0.00001 }} {{ -0.0 }} {{ 1/3 }} {{ 10/4 }} {{ 3.0 }})T",
       R"E(1e+16 1500000000000000.0 0.0001 1e-05 -0.0 0.3333333333333333 2.5 3.0)E"},
      {R"T({{ (1, 2) }} {{ (1,) }} {{ () }} {{ [] }} {{ {} }} {{ {"a": 1, 2: "b", none: true} }} {{ "adj" "acent" 'strings' }})T",
       R"E((1, 2) (1,) () [] {} {'a': 1, 2: 'b', None: True} adjacentstrings)E"},
      {R"T({{ 'single \'q\'' }} {{ "tab\there" }} {{ "\x41\u00e9\U0001F600" }} {{ "\q" }} {{ '\101' }})T",
       "single 'q' tab\there A\xC3\xA9\xF0\x9F\x98\x80 \\q A"},
      {R"T({{ 0x1F }} {{ 0b101 }} {{ 0o17 }} {{ 1_000 }} {{ 1_0.5 }} {{ 1e3 }} {{ 2E-3 }} {{ True }} {{ None }})T",
       R"E(31 5 15 1000 10.5 1000.0 0.002 True None)E"},
  });
}

TEST_F(ChatTemplateTest, OperatorsFollowPython) {
  check_table({
      {R"T({{ 1 + 2 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }})T",
       R"E(3 3.5 3 -4 2 1024 0.5 3.0 0.5)E"},
      {R"T({{ "a" + "b" }} {{ "ab" * 3 }} {{ [1] + [2] }} {{ "x" ~ 1 ~ none ~ true ~ undefined_var }} {{ "a" ~ 2 * 3 }})T",
       R"E(ab ababab [1, 2] x1NoneTrue a6)E"},
      {R"T({{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1.0 }} {{ true == 1 }} {{ [1,2] < [1,3] }} {{ "ell" in s }} {{ 9 not in lst }} {{ "a" in d }})T",
       R"E(True False True True True True True True)E"},
      {R"T({{ true and "x" }} {{ "" or "dflt" }} {{ 0 or none }} {{ not lst }} {{ n if t else 0 }} {{ n if nothing }}.)T",
       R"E(x dflt None False 7 .)E"},
      {R"T({{ -2 ** 2 }} {{ 2 ** 3 ** 2 }} {{ 1 + 2 * 3 - 4 / 2 }} {{ 2 * 3 ~ 4 }} {{ -(lst|length) }} {{ lst|length > 2 and "many" or "few" }})T",
       R"E(4 64 5.0 64 -3 many)E"},
  });
}

TEST_F(ChatTemplateTest, LookupSlicingAndUndefined) {
  check_table({
      {R"T({{ d.a }} {{ d['b'] }} {{ d.c.x[1] }} {{ d.c.x.0 }} {{ d.missing }}|{{ lst[10] }}|{{ lst[-1] }})T",
       R"E(2 1 2 1 ||2)E"},
      {R"T({{ lst[1:] }} {{ lst[::-1] }} {{ s[2:7] }} {{ uni[1:4] }} {{ uni[::-1] }} {{ messages[-1]['content'] }})T",
       "[1, 2] [2, 1, 3] Hello \xC3\xA9ll dlr\xC3\xB6w oll\xC3\xA9h Bye"},
      {R"T({{ d.items() }} {{ d.keys() | list }} {{ d.get('zz', 5) }} {{ messages[0].get('missing', 'def') }})T",
       R"E(dict_items([('b', 1), ('a', 2), ('c', {'x': [1, 2]})]) ['b', 'a', 'c'] 5 def)E"},
      {R"T({{ 'content' in messages[0] }} {{ messages[0].tool_calls is defined }} {{ undefined_var | length }})T",
       R"E(True False 0)E"},
  });
}

TEST_F(ChatTemplateTest, ForLoops) {
  check_table({
      {R"T({% for x in lst %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }};{% endfor %})T",
       R"E(1/0/3/True/False/3;2/1/2/False/False/3;3/2/1/False/True/3;)E"},
      {R"T({% for x in lst %}[{{ loop.previtem }}|{{ loop.nextitem }}]{% endfor %}{% for x in lst %}{{ loop.cycle('o', 'e') }}{% endfor %})T",
       R"E([|1][3|2][1|]oeo)E"},
      {R"T({% for x in lst if x > 1 %}{{ x }}:{{ loop.index }}/{{ loop.length }}{% if not loop.last %},{% endif %}{% endfor %})T",
       R"E(3:1/2,2:2/2)E"},
      {R"T({% for x in lst %}{% if x == 1 %}{% continue %}{% endif %}{{ x }}{% endfor %}|{% for x in lst %}{% if x == 1 %}{% break %}{% endif %}{{ x }}{% endfor %})T",
       R"E(32|3)E"},
      {R"T({% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}|{% for x in undefined_var %}no{% else %}empty{% endfor %})T",
       R"E(b=1;a=2;c={'x': [1, 2]};|empty)E"},
      {R"T({% set x = 7 %}{% for i in [1, 2] %}{% if i == 2 %}{% set x = i %}{% endif %}{{ x }}{% endfor %}{{ x }})T",
       R"E(727)E"},
  });
}

TEST_F(ChatTemplateTest, SetNamespaceMacrosAndBlocks) {
  check_table({
      {R"T({% set ns = namespace(count=0, items=[]) %}{% for x in lst %}{% set ns.count = ns.count + x %}{% set ns.items = ns.items + [x] %}{% endfor %}{{ ns.count }}{{ ns.items }})T",
       R"E(6[3, 1, 2])E"},
      {R"T({% set a, b = 1, 2 %}{{ a }}{{ b }}|{% set blk %}inner {{ n }}{% endset %}[{{ blk }}]|{% set up | upper %}x{% endset %}{{ up }})T",
       R"E(12|[inner 7]|X)E"},
      {R"T({% macro greet(name, punct="!") %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet("Bob") }} {{ greet(punct=".", name="Z") }} {{ greet() }})T",
       R"E(Hi Bob! Hi Z. Hi !)E"},
      {R"T({% macro fact(k) %}{% if k <= 1 %}1{% else %}{{ k * (fact(k - 1) | int) }}{% endif %}{% endmacro %}{{ fact(5) }})T",
       R"E(120)E"},
      {R"T({% macro va(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ va(1, 2, 3, x=4) }})T",
       R"E(1(2, 3){'x': 4})E"},
      {R"T({% macro wrap2(x) %}{% for i in range(x) %}{{ caller(i) }}{% endfor %}{% endmacro %}{% call(i) wrap2(3) %}[{{ i }}]{% endcall %})T",
       R"E([0][1][2])E"},
      {R"T({% filter replace("a", "o") | title %}banana split{% endfilter %}|{% with a = 1 %}{{ a }}{% endwith %}{{ a }})T",
       R"E(Bonono Split|1)E"},
  });
}

TEST_F(ChatTemplateTest, Filters) {
  check_table({
      {R"T({{ s | trim }}|{{ s | trim("H ") }}|{{ "hELLO wORLD" | capitalize }}|{{ "hello big-world (x)" | title }}|{{ uni | upper }})T",
       "Hello World|ello World|Hello world|Hello Big-World (X)|H\xC3\x89LLO W\xC3\x96RLD"},
      {R"T({{ lst | length }} {{ uni | length }} {{ lst | first }} {{ lst | last }} {{ [] | first }}|{{ lst | join(",") }} {{ users | join(", ", attribute="name") }})T",
       R"E(3 11 3 2 |3,1,2 bob, Alice, carol)E"},
      {R"T({{ words | sort }} {{ lst | sort(reverse=true) }} {{ users | sort(attribute="age,name") | map(attribute="name") | list }} {{ words | unique | list }})T",
       R"E(['A', 'a', 'b', 'c'] [3, 2, 1] ['Alice', 'bob', 'carol'] ['b', 'A', 'c'])E"},
      {R"T({{ lst | min }} {{ lst | max }} {{ lst | sum }} {{ users | sum(attribute="age") }} {{ users | max(attribute="age") }})T",
       R"E(1 3 6 85 {'name': 'bob', 'age': 30})E"},
      {R"T({{ lst | select("odd") | list }} {{ lst | reject("odd") | list }} {{ users | selectattr("age", "equalto", 30) | map(attribute="name") | list }} {{ lst | map("string") | join }})T",
       R"E([3, 1] [2] ['bob', 'carol'] 312)E"},
      {R"T({{ d | dictsort }} {{ d | items | list }} {{ lst | reverse | list }} {{ "abc" | reverse }} {{ lst | batch(2) | list }})T",
       R"E([('a', 2), ('b', 1), ('c', {'x': [1, 2]})] [('b', 1), ('a', 2), ('c', {'x': [1, 2]})] [2, 1, 3] cba [[3, 1], [2]])E"},
      {R"T({{ undefined_var | default("dflt") }} {{ e | default("dflt") }} {{ e | default("dflt", true) }} {{ nothing | d("x", boolean=true) }})T",
       R"E(dflt  dflt x)E"},
      {R"T({{ "4.7" | int }} {{ "abc" | int(-1) }} {{ "0x1A" | int(0, 16) }} {{ "3.5" | float }} {{ 42 | string ~ "!" }} {{ "<a href='x'>&</a>" | e }})T",
       R"E(4 -1 26 3.5 42! &lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;)E"},
      {R"T({{ -3 | abs }} {{ 2.675 | round(2) }} {{ 2.5 | round }} {{ 42 | round }} {{ 42.55 | round(1, "floor") }} {{ 15 | round(-1) }})T",
       R"E(3 2.67 2.0 42 42.5 20)E"},
      {R"T({{ text | indent }}|{{ text | indent(2, true) }}|{{ text | indent("> ", blank=true) }})T",
       "line1\n    line2\n\n    line4|  line1\n  line2\n\n  line4|line1\n> line2\n> \n> line4"},
      {R"T({{ "foo bar baz qux" | truncate(9) }}|{{ "x" | center(5) }}|{{ "a b  c-d" | wordcount }}|{{ "%s-%03d-%.2f" | format("a", 7, 3.14159) }})T",
       R"E(foo...|  x  |4|a-007-3.14)E"},
      {R"T({{ users | groupby("age") | map(attribute="grouper") | list }} {% for g in users | groupby("age") %}{{ g.list | length }}{% endfor %})T",
       R"E([25, 30] 12)E"},
  });
}

TEST_F(ChatTemplateTest, TojsonIsPythonJsonDumps) {
  check_table({
      {R"T({{ d | tojson }} {{ mixed | tojson }} {{ fl | tojson }} {{ uni | tojson }} {{ "q\"\\\n\t\u0001\u2028" | tojson }})T",
       "{\"b\": 1, \"a\": 2, \"c\": {\"x\": [1, 2]}} [1, \"a\", null, true, 2.0, [1, [2]], {\"k\": \"v'q\"}] "
       "[1.0, 0.1, 1e-05, 1e+16, 123.456] \"h\xC3\xA9llo w\xC3\xB6rld\" \"q\\\"\\\\\\n\\t\\u0001\xE2\x80\xA8\""},
      {R"T({{ d | tojson(indent=2) }}|{{ [] | tojson(indent=2) }}|{{ d | tojson(sort_keys=true, separators=(",", ":")) }}|{{ uni | tojson(ensure_ascii=true) }})T",
       "{\n  \"b\": 1,\n  \"a\": 2,\n  \"c\": {\n    \"x\": [\n      1,\n      2\n    ]\n  }\n}|[]|"
       "{\"a\":2,\"b\":1,\"c\":{\"x\":[1,2]}}|\"h\\u00e9llo w\\u00f6rld\""},
  });
}

TEST_F(ChatTemplateTest, Tests) {
  check_table({
      {R"T({{ n is defined }} {{ undefined_var is undefined }} {{ nothing is none }} {{ n is not none }} {{ s is string }} {{ d is mapping }} {{ lst is mapping }})T",
       R"E(True True True True True True False)E"},
      {R"T({{ n is number }} {{ t is number }} {{ n is integer }} {{ t is integer }} {{ f is float }} {{ t is boolean }} {{ t is true }} {{ 1 is true }})T",
       R"E(True True True False True True True False)E"},
      {R"T({{ n is odd }} {{ 9 is divisibleby 3 }} {{ s is iterable }} {{ n is iterable }} {{ d is sequence }} {{ 2 is in lst }} {{ n is eq 7 }} {{ n is gt 5 }} {{ "up" is lower }})T",
       R"E(True True True False True True True True True)E"},
  });
}

TEST_F(ChatTemplateTest, StrDictAndListMethods) {
  check_table({
      {R"T({{ s.strip() }}|{{ "xxhixx".strip("x") }}|{{ "\n\nhi\n".lstrip("\n") }}|{{ "abc".rstrip("cb") }})T",
       R"E(Hello World|hi|hi
|a)E"},
      {R"T({{ "a,b,,c".split(",") }} {{ "  a b  c ".split() }} {{ "a,b,c".rsplit(",", 1) }} {{ "x</think>y</think>z".split("</think>")[-1] }} {{ text.splitlines() }})T",
       R"E(['a', 'b', '', 'c'] ['a', 'b', 'c'] ['a,b', 'c'] z ['line1', 'line2', '', 'line4'])E"},
      {R"T({{ s.startswith("  H") }} {{ "abc".startswith(("x", "a")) }} {{ "abc".endswith("bc") }} {{ "they're bill's".title() }} {{ "aaa".replace("a", "b", 2) }})T",
       R"E(True True True They'Re Bill'S bba)E"},
      {R"T({{ "hello".find("l") }} {{ "hello".rfind("l") }} {{ "hello".count("l") }} {{ ", ".join(["a", "b"]) }} {{ "123".isdigit() }} {{ "42".zfill(5) }} {{ "a=b=c".partition("=") }})T",
       R"E(2 3 2 a, b True 00042 ('a', '=', 'b=c'))E"},
      {R"T({{ "{} {}".format("a", 1) }} {{ "{name}!".format(name="N") }} {{ "{:>6}|{:.2f}|{:05d}|{:,}".format("r", 3.14159, 42, 1234567) }} {{ "%s and %d%%" % ("a", 50) }})T",
       R"E(a 1 N!      r|3.14|00042|1,234,567 a and 50%)E"},
      {R"T({{ lst.index(1) }} {{ lst.count(3) }} {{ d.values() | list }})T", R"E(1 1 [1, 2, {'x': [1, 2]}])E"},
  });
}

TEST_F(ChatTemplateTest, Globals) {
  check_table({
      {R"T({{ range(5) | list }} {{ range(10, 0, -3) | list }} {{ dict(a=1, b="x") }} {{ dict({"z": 1}, y=2) }})T",
       R"E([0, 1, 2, 3, 4] [10, 7, 4, 1] {'a': 1, 'b': 'x'} {'z': 1, 'y': 2})E"},
      {R"T({{ strftime_now("%Y-%m-%d %H:%M:%S %A %B %d %b %j %p %I %%") }}|{{ strftime_now("%d %b %Y") }})T",
       R"E(2023-11-14 22:13:20 Tuesday November 14 Nov 318 PM 10 %|14 Nov 2023)E"},
      {R"T({{ bos_token }}{{ eos_token }}{{ tools is none }}{{ documents is none }}{{ add_generation_prompt }})T",
       R"E(<s></s>TrueTrueFalse)E"},
  });
}

TEST_F(ChatTemplateTest, GeneratorsAreLazyAndIfDefersUnknownNames) {
  // jinja2 only rejects an unknown filter / test at compile time outside if statements and inline ifs, and a
  // generator (select, map, ...) runs nothing until iterated; a generator is always true.
  check_table({
      {R"T({% if false %}{{ x | nosuch }}{% endif %}ok)T", R"E(ok)E"},
      {R"T({% for x in [1] %}{% if false %}{{ x | nosuch }}{% endif %}{% endfor %}ok)T", R"E(ok)E"},
      {R"T({% if [1, 2] | select("nosuchtest") %}yes{% endif %})T", R"E(yes)E"},
      {R"T({% set g = lst | select("odd") %}{{ g | first }}{% for x in g %}[{{ x }}]{% endfor %}{% for x in g %}{{ x }}{% endfor %})T",
       R"E(3[1])E"},
      {R"T({% if lst | select("equalto", 99) %}generator-is-true{% endif %})T", R"E(generator-is-true)E"},
  });
  EXPECT_EQ(error_of("{{ 1 if false else [1] | nosuch }}"), "chat_template:1: No filter named 'nosuch' found.");
  EXPECT_EQ(error_of("\n{{ [1] | nosuch }}"), "chat_template:2: no filter named \"nosuch\"");
}

TEST_F(ChatTemplateTest, SyntaxErrorsNameTheLine) {
  EXPECT_EQ(error_of("line one\n{{ a b }}"), "chat_template:2: expected token 'end of print statement', got 'b'");
  EXPECT_EQ(error_of("{% if true %}\nunclosed"),
            "chat_template:2: Unexpected end of template. Jinja was looking for the following tags: 'elif' or 'else' "
            "or 'endif'. The innermost block that needs to be closed is 'if'.");
  EXPECT_EQ(error_of("a\nb\n{% do x %}"), "chat_template:3: Encountered unknown tag 'do'.");
  EXPECT_EQ(error_of("{{ (1, 2 }}"), "chat_template:1: unexpected '}', expected ')'");
  EXPECT_EQ(error_of("{{ 'unterminated }}"), "chat_template:1: unexpected char \"'\" at 3");
  EXPECT_EQ(error_of("\n\n{% break %}"), "chat_template:3: 'break' outside of a loop");
  EXPECT_EQ(error_of("{# never closed"), "chat_template:1: Missing end of comment tag");
  // Parsing alone reports them, with the caller's name for the template.
  try {
    ChatTemplate("ok\n{{ 1 | nosuch }}", "ckpt/tokenizer_config.json: chat_template");
    ADD_FAILURE() << "expected a parse error";
  } catch (const ChatTemplateError& e) {
    EXPECT_STREQ(e.what(), "ckpt/tokenizer_config.json: chat_template:2: no filter named \"nosuch\"");
  }
}

TEST_F(ChatTemplateTest, UnsupportedConstructsNameTheConstructAndLine) {
  EXPECT_EQ(error_of("x\ny\n{{ s | wordwrap(5) }}"), "chat_template:3: unsupported filter \"wordwrap\"");
  EXPECT_EQ(error_of("{% include 'other.jinja' %}"), "chat_template:1: unsupported statement \"include\"");
  EXPECT_EQ(error_of("\n{% for x in lst recursive %}{% endfor %}"),
            "chat_template:2: unsupported statement \"for ... recursive\"");
  EXPECT_EQ(error_of("\n{{ s.encode() }}"), "chat_template:2: unsupported method \"encode\" of str");
  EXPECT_EQ(error_of("{{ cycler(1, 2) }}"), "chat_template:1: unsupported function \"cycler\"");
  // an unsupported filter in a branch that never runs is no error, as in jinja2
  EXPECT_EQ(render("{% if false %}{{ s | wordwrap }}{% endif %}ok"), "ok");
}

TEST_F(ChatTemplateTest, RuntimeErrorsAreJinjasMessages) {
  EXPECT_EQ(error_of("{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"),
            "chat_template:1: raise_exception: Conversation roles must alternate user/assistant/user/assistant/...");
  EXPECT_EQ(error_of("\n{{ foo.bar }}"), "chat_template:2: 'foo' is undefined");
  EXPECT_EQ(error_of("{{ messages[0].nope.deeper }}"), "chat_template:1: 'dict object' has no attribute 'nope'");
  EXPECT_EQ(error_of("{{ messages[5].content }}"), "chat_template:1: list object has no element 5");
  EXPECT_EQ(error_of("{{ 'a' + 1 }}"), "chat_template:1: can only concatenate str (not \"int\") to str");
  EXPECT_EQ(error_of("{{ 1 / 0 }}"), "chat_template:1: division by zero");
  EXPECT_EQ(error_of("{{ messages.append(1) }}"),
            "chat_template:1: access to attribute 'append' of 'list' object is unsafe.");
  EXPECT_EQ(error_of("{% set ns = namespace() %}{% set ns._x = 1 %}"),
            "chat_template:1: Chat templates cannot store underscore-prefixed attributes on a namespace, but got '_x'. "
            "Please rename the attribute.");
  EXPECT_EQ(error_of("{{ range(200000) | length }}"),
            "chat_template:1: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  EXPECT_EQ(error_of("{{ lst | select('odd') | length }}"), "chat_template:1: object of type 'generator' has no len()");
  EXPECT_EQ(error_of("{{ undefined_var | tojson }}"),
            "chat_template:1: Object of type Undefined is not JSON serializable");
  EXPECT_EQ(error_of("{% macro two(a, b) %}{% endmacro %}{{ two(1, 2, 3) }}"),
            "chat_template:1: macro 'two' takes not more than 2 argument(s)");
}

TEST_F(ChatTemplateTest, RunawayRecursionIsAnErrorNotACrash) {
  EXPECT_EQ(error_of("{% macro f(x) %}{{ f(x + 1) }}{% endmacro %}\n{{ f(0) }}"),
            "chat_template:1: macro calls nested more than 256 deep (runaway recursion?)");
  const std::string deep = std::string(5000, '(') + "1" + std::string(5000, ')');
  EXPECT_EQ(error_of("{{ " + deep + " }}"), "chat_template:1: template nested too deeply (more than 200 levels)");
  const std::string list = std::string(5000, '[') + std::string(5000, ']');
  EXPECT_EQ(error_of("{{ " + list + " }}"), "chat_template:1: template nested too deeply (more than 200 levels)");
}

TEST_F(ChatTemplateTest, InputErrors) {
  EXPECT_EQ(error_of("{{ 1 }}", kVars, "[{\"role\": \"user\""),
            "chat_template: messages_json: invalid JSON at byte 16: expected ',' or '}'");
  EXPECT_EQ(error_of("{{ 1 }}", kVars, "[]"),
            "chat_template: Cannot apply chat template to an empty conversation. Provide at least one message.");
  EXPECT_EQ(error_of("{{ 1 }}", kVars, "[\"hi\"]"),
            "chat_template: Chat messages should be dicts, dataclasses or pydantic models, but got 'hi'.");
  EXPECT_EQ(error_of("{{ 1 }}", "[1]"), "chat_template: variables_json: expected a JSON object, got list");
  EXPECT_EQ(error_of("{{ 1 }}", R"({"documents": [1]})"),
            "chat_template: Documents should be a list of dicts with 'title' and 'text' keys!");
  EXPECT_EQ(error_of("{{ 1 }}", R"({"messages": []})"),
            "chat_template: variables_json: \"messages\" has its own ChatTemplateInputs field");
}

TEST_F(ChatTemplateTest, InputsAreHandledAsApplyChatTemplateDoes) {
  const std::string tpl =
      "{% for m in messages %}{{ m | tojson }}\n{% endfor %}{{ tools }}|{{ documents | length }}|{{ bos_token }}";
  ChatTemplate t(tpl);
  ChatTemplateInputs in;
  // a null-valued key is dropped; a reasoning field is copied to "thinking" (first) and "reasoning_content"
  in.messages_json = R"([{"role": "user", "content": "q", "name": null},
                         {"role": "assistant", "content": "a", "reasoning": "r"}])";
  in.tools_json = R"([{"type": "function", "function": {"name": "f"}}])";
  in.special_tokens = {{"bos_token", "<s>"}};
  in.variables_json = R"({"bos_token": "<override>", "documents": [{"title": "t", "text": "x"}]})";
  EXPECT_EQ(t.render(in).text,
            "{\"role\": \"user\", \"content\": \"q\"}\n"
            "{\"thinking\": \"r\", \"role\": \"assistant\", \"content\": \"a\", \"reasoning\": \"r\", "
            "\"reasoning_content\": \"r\"}\n"
            "[{'type': 'function', 'function': {'name': 'f'}}]|1|<override>");
}

TEST_F(ChatTemplateTest, ContinueFinalMessage) {
  ChatTemplate chatml(
      "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
      "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}");
  ChatTemplateInputs in;
  in.messages_json = R"([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Once upon "}])";
  in.continue_final_message = true;
  // the text stops right after the final content, trailing space included
  EXPECT_EQ(chatml.render(in).text, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nOnce upon ");
  // a template that trims the content: the cut also drops the trimmed whitespace
  ChatTemplate trims("{% for m in messages %}[{{ m.content | trim }}]{% endfor %}");
  EXPECT_EQ(trims.render(in).text, "[Hi][Once upon");
  // content blocks: the last text block is continued
  in.messages_json =
      R"([{"role": "user", "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B "}]}])";
  ChatTemplate blocks("{% for m in messages %}{% for b in m.content %}<{{ b.text }}>{% endfor %}{% endfor %}");
  EXPECT_EQ(blocks.render(in).text, "<A><B ");
  // transformers' errors
  in.add_generation_prompt = true;
  EXPECT_THROW(chatml.render(in), ChatTemplateError);
  in.add_generation_prompt = false;
  ChatTemplate no_content_field("{% for m in messages %}{{ m.role }}{% endfor %}");
  try {
    no_content_field.render(in);
    ADD_FAILURE();
  } catch (const ChatTemplateError& e) {
    EXPECT_STREQ(e.what(),
                 "chat_template: continue_final_message is set to \"content\" but this is not an accepted "
                 "field in the chat_template");
  }
  ChatTemplate drops("{% for m in messages %}{% if m.role == 'user' %}{{ m.content }}{% endif %}{% endfor %}");
  in.messages_json = R"([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "cut"}])";
  try {
    drops.render(in);
    ADD_FAILURE();
  } catch (const ChatTemplateError& e) {
    EXPECT_NE(std::string(e.what()).find("the final message does not appear in the chat"), std::string::npos);
  }
}

TEST_F(ChatTemplateTest, GenerationSpansAreTheAssistantBytes) {
  ChatTemplate t(
      "{%- for m in messages %}<|{{ m.role }}|>{% if m.role == 'assistant' %}{% generation %}{{ m.content }}"
      "<|end|>{% endgeneration %}{% else %}{{ m.content }}<|end|>{% endif %}{% endfor %}");
  ChatTemplateInputs in;
  in.messages_json = R"([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "h\u00e9"},
                         {"role": "user", "content": "x"}, {"role": "assistant", "content": "ok"}])";
  const RenderedChat out = t.render(in);
  EXPECT_EQ(out.text, "<|user|>Hi<|end|><|assistant|>h\xC3\xA9<|end|><|user|>x<|end|><|assistant|>ok<|end|>");
  ASSERT_EQ(out.generation_spans.size(), 2u);
  EXPECT_EQ(
      out.text.substr(out.generation_spans[0].first, out.generation_spans[0].second - out.generation_spans[0].first),
      "h\xC3\xA9<|end|>");  // byte offsets 30..40 (transformers counts 30..39 characters)
  EXPECT_EQ(out.generation_spans[0], (std::pair<std::size_t, std::size_t>(30, 40)));
  EXPECT_EQ(out.text.substr(out.generation_spans[1].first), "ok<|end|>");
  // variables set inside a generation block stay inside it, as in jinja2 (the block is a caller function)
  EXPECT_EQ(render("{% generation %}{% set v = 1 %}{% endgeneration %}[{{ v }}]"), "[]");
}

TEST_F(ChatTemplateTest, ConvenienceOverloadAndTemplateField) {
  ChatTemplate t(
      "{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|>\n{% endfor %}"
      "{% if add_generation_prompt %}<|assistant|>{% endif %}");
  EXPECT_EQ(t.render({{"user", "Hi"}}, /*add_generation_prompt=*/true, false, {{"bos_token", "<s>"}}),
            "<s><|user|>Hi<|end|>\n<|assistant|>");
  EXPECT_EQ(t.name(), "chat_template");

  EXPECT_EQ(parse_chat_template_field(R"("{{ x }}")"),
            (std::vector<std::pair<std::string, std::string>>{{"default", "{{ x }}"}}));
  EXPECT_EQ(
      parse_chat_template_field(
          R"([{"name": "default", "template": "a"}, {"name": "tool_use", "template": "b"}, {"name": "default", "template": "c"}])"),
      (std::vector<std::pair<std::string, std::string>>{{"default", "c"}, {"tool_use", "b"}}));
  EXPECT_THROW(parse_chat_template_field("42"), ChatTemplateError);
  EXPECT_THROW(parse_chat_template_field(R"([{"name": "x"}])"), ChatTemplateError);
}

TEST_F(ChatTemplateTest, RendersFromManyThreadsAtOnce) {
  const ChatTemplate t(
      "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{{ m.content | upper }}"
      "{% endfor %}{{ ns.n }}");
  std::vector<std::thread> threads;
  std::vector<std::string> results(8);
  for (int k = 0; k < 8; ++k) {
    threads.emplace_back([&, k] {
      for (int rep = 0; rep < 200; ++rep) {
        ChatTemplateInputs in;
        in.messages_json = "[{\"role\": \"user\", \"content\": \"m" + std::to_string(k) + "\"}]";
        results[k] = t.render(in).text;
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int k = 0; k < 8; ++k) EXPECT_EQ(results[k], "M" + std::to_string(k) + "1");
}

}  // namespace
}  // namespace prefopt::data
