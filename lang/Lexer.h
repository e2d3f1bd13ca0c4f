// SPDX-License-Identifier: Apache-2.0
/// The lexer of the .llmp language: turns one source buffer into tokens that carry their
/// `file:line:col`. Keywords are contextual (a stage field may be called `model`), so the
/// lexer returns them as identifiers and the parser compares spellings. A token remembers
/// whether a line break preceded it: declarations, statements and fields end at a `;` or at
/// the end of a line.
#pragma once

#include "lang/AST.h"

#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <string>

namespace llmp::lang {

/// The kinds of tokens.
enum class Tok {
  Eof,
  Error, ///< an invalid character or malformed literal; `text` holds the message
  Ident,
  Int,
  Float,
  String,
  LParen, RParen, LBracket, RBracket, LBrace, RBrace,
  Comma, Colon, Semi, Dot, Assign, At, Plus, Minus, Star, Slash, Arrow,
};

/// One token with its spelling and position.
struct Token {
  Tok kind = Tok::Eof;
  std::string text; ///< spelling; the decoded value for strings; the message for errors
  Loc loc;
  bool newlineBefore = false; ///< a line break separates this token from the previous one
  int64_t intValue = 0;
  double floatValue = 0.0;
};

/// Returns a printable description of a token for diagnostics, e.g. `'}'` or `end of file`.
std::string describe(const Token &tok);

/// Splits a buffer into tokens on demand. The buffer and the file name must outlive it.
class Lexer {
public:
  Lexer(llvm::StringRef buffer, llvm::StringRef file) : buf(buffer), file(file) {}

  /// Returns the next token; after the end of the buffer, returns `Tok::Eof` forever.
  Token next();

private:
  char peek(size_t ahead = 0) const {
    return pos + ahead < buf.size() ? buf[pos + ahead] : '\0';
  }
  char advance();
  Loc here() const { return Loc{file, line, col}; }
  Token lexNumber(Token tok);
  Token lexString(Token tok);

  llvm::StringRef buf;
  llvm::StringRef file;
  size_t pos = 0;
  unsigned line = 1, col = 1;
};

} // namespace llmp::lang
