// SPDX-License-Identifier: Apache-2.0
/// Error values for the runtime's public API. Runtime functions never call exit()/abort()
/// and never let an exception escape: they return a `Status` (or an `Expected<T>`, a value
/// or a status) whose message names the file, the operation and the numbers involved, e.g.
/// `"corpus 'x.txt': cannot open: No such file or directory"`.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace lrt {

/// Broad class of a failure, for callers that branch on it; the message has the details.
enum class StatusCode {
  Ok,
  InvalidArgument,
  NotFound,
  IoError,
  OutOfRange,
  Internal,
  Cancelled, ///< stopped on request (SIGINT/SIGTERM via TrainOptions::stop)
  OutOfMemory, ///< an allocation failed or would not fit; the message says what and how much
};

/// Success, or a failure with a code and a human-readable message (lowercase, no final
/// period, quoting user names).
class [[nodiscard]] Status {
public:
  /// A success value.
  Status() = default;
  static Status ok() { return Status(); }
  /// A failure; `code` must not be StatusCode::Ok.
  static Status error(StatusCode code, std::string message) {
    Status s;
    s.code_ = code;
    s.message_ = std::move(message);
    return s;
  }
  static Status invalid(std::string m) { return error(StatusCode::InvalidArgument, std::move(m)); }
  static Status ioError(std::string m) { return error(StatusCode::IoError, std::move(m)); }
  static Status internal(std::string m) { return error(StatusCode::Internal, std::move(m)); }
  static Status cancelled(std::string m) { return error(StatusCode::Cancelled, std::move(m)); }
  static Status outOfMemory(std::string m) {
    return error(StatusCode::OutOfMemory, std::move(m));
  }

  bool isOk() const { return code_ == StatusCode::Ok; }
  explicit operator bool() const { return isOk(); }
  StatusCode code() const { return code_; }
  /// Empty on success.
  const std::string &message() const { return message_; }
  /// The same failure with `context + ": "` prepended to the message; success unchanged.
  Status withContext(const std::string &context) const {
    if (isOk())
      return *this;
    return error(code_, context + ": " + message_);
  }

private:
  StatusCode code_ = StatusCode::Ok;
  std::string message_;
};

/// Either a value of type `T` or a failed `Status`. Converts implicitly from both, so a
/// function returning `Expected<T>` can `return value;` or `return Status::invalid(...);`.
template <typename T>
class [[nodiscard]] Expected {
public:
  Expected(T value) : value_(std::move(value)) {}
  /// `status` must be a failure.
  Expected(Status status) : status_(std::move(status)) {
    if (status_.isOk())
      status_ = Status::internal("Expected constructed from a success status without a value");
  }
  bool isOk() const { return value_.has_value(); }
  explicit operator bool() const { return isOk(); }
  /// The failure (success when a value is held).
  const Status &status() const { return status_; }
  /// The value; only valid when isOk().
  T &operator*() { return *value_; }
  const T &operator*() const { return *value_; }
  T *operator->() { return &*value_; }
  const T *operator->() const { return &*value_; }
  /// Moves the value out; only valid when isOk().
  T take() { return std::move(*value_); }

private:
  std::optional<T> value_;
  Status status_;
};

} // namespace lrt
