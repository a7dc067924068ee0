// Asserts that a call raises a c10::Error whose message contains a given fragment, so the bad-input
// tests check what the user reads, not only that something threw.
#pragma once

#include <functional>
#include <string>

#include <c10/util/Exception.h>
#include <gtest/gtest.h>

namespace prefopt::testing {

inline void expect_error(const std::function<void()>& call, const std::string& fragment) {
  try {
    call();
    ADD_FAILURE() << "expected an error containing: " << fragment;
  } catch (const c10::Error& e) {
    const std::string message = e.what_without_backtrace();
    EXPECT_NE(message.find(fragment), std::string::npos) << "message: " << message << "\nexpected: " << fragment;
  }
}

}  // namespace prefopt::testing
