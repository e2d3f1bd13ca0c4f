// SPDX-License-Identifier: Apache-2.0
/// The .llmp lexer.
#include "lang/Lexer.h"

#include <cctype>
#include <cmath>
#include <cerrno>
#include <cstdlib>

namespace llmp::lang {

std::string describe(const Token &tok) {
  switch (tok.kind) {
  case Tok::Eof:
    return "end of file";
  case Tok::Error:
    return "invalid token";
  case Tok::String:
    return "string \"" + tok.text + "\"";
  case Tok::Int:
  case Tok::Float:
    return "number '" + tok.text + "'";
  case Tok::Ident:
    return "'" + tok.text + "'";
  default:
    return "'" + tok.text + "'";
  }
}

char Lexer::advance() {
  char c = buf[pos++];
  // A line ends at "\n", "\r\n" or a lone "\r" (old Mac files).
  if (c == '\n' || (c == '\r' && peek() != '\n')) {
    ++line;
    col = 1;
  } else {
    ++col;
  }
  return c;
}

Token Lexer::next() {
  Token tok;
  // A UTF-8 byte order mark at the start of the file is not part of the text.
  if (pos == 0 && buf.starts_with("\xEF\xBB\xBF"))
    pos = 3;
  // Skip blanks and `//` comments, remembering line breaks.
  while (pos < buf.size()) {
    char c = peek();
    if (c == '\n' || (c == '\r' && peek(1) != '\n')) {
      tok.newlineBefore = true;
      advance();
    } else if (c == ' ' || c == '\t' || c == '\r') {
      advance();
    } else if (c == '/' && peek(1) == '/') {
      while (pos < buf.size() && peek() != '\n')
        advance();
    } else {
      break;
    }
  }
  tok.loc = here();
  if (pos >= buf.size()) {
    tok.kind = Tok::Eof;
    return tok;
  }
  char c = peek();
  if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
    size_t start = pos;
    while (std::isalnum(static_cast<unsigned char>(peek())) || peek() == '_')
      advance();
    tok.kind = Tok::Ident;
    tok.text = buf.substr(start, pos - start).str();
    return tok;
  }
  if (std::isdigit(static_cast<unsigned char>(c)) ||
      (c == '.' && std::isdigit(static_cast<unsigned char>(peek(1)))))
    return lexNumber(std::move(tok));
  if (c == '"')
    return lexString(std::move(tok));

  advance();
  tok.text = std::string(1, c);
  switch (c) {
  case '(': tok.kind = Tok::LParen; return tok;
  case ')': tok.kind = Tok::RParen; return tok;
  case '[': tok.kind = Tok::LBracket; return tok;
  case ']': tok.kind = Tok::RBracket; return tok;
  case '{': tok.kind = Tok::LBrace; return tok;
  case '}': tok.kind = Tok::RBrace; return tok;
  case ',': tok.kind = Tok::Comma; return tok;
  case ':': tok.kind = Tok::Colon; return tok;
  case ';': tok.kind = Tok::Semi; return tok;
  case '.': tok.kind = Tok::Dot; return tok;
  case '=': tok.kind = Tok::Assign; return tok;
  case '@': tok.kind = Tok::At; return tok;
  case '+': tok.kind = Tok::Plus; return tok;
  case '*': tok.kind = Tok::Star; return tok;
  case '/': tok.kind = Tok::Slash; return tok;
  case '-':
    if (peek() == '>') {
      advance();
      tok.kind = Tok::Arrow;
      tok.text = "->";
    } else {
      tok.kind = Tok::Minus;
    }
    return tok;
  default:
    break;
  }
  tok.kind = Tok::Error;
  unsigned char uc = static_cast<unsigned char>(c);
  static const char *hex = "0123456789abcdef";
  if (std::isprint(uc))
    tok.text = std::string("unexpected character '") + c + "'";
  else if (uc >= 0x80)
    tok.text = std::string("unexpected non-ASCII byte 0x") + hex[uc >> 4] + hex[uc & 15] +
               "; identifiers are ASCII letters, digits and '_'";
  else
    tok.text = std::string("unexpected byte 0x") + hex[uc >> 4] + hex[uc & 15];
  return tok;
}

Token Lexer::lexNumber(Token tok) {
  size_t start = pos;
  bool isFloat = false;
  while (std::isdigit(static_cast<unsigned char>(peek())))
    advance();
  if (peek() == '.' && std::isdigit(static_cast<unsigned char>(peek(1)))) {
    isFloat = true;
    advance();
    while (std::isdigit(static_cast<unsigned char>(peek())))
      advance();
  }
  if ((peek() == 'e' || peek() == 'E') &&
      (std::isdigit(static_cast<unsigned char>(peek(1))) ||
       ((peek(1) == '-' || peek(1) == '+') &&
        std::isdigit(static_cast<unsigned char>(peek(2)))))) {
    isFloat = true;
    advance();
    if (peek() == '-' || peek() == '+')
      advance();
    while (std::isdigit(static_cast<unsigned char>(peek())))
      advance();
  }
  tok.text = buf.substr(start, pos - start).str();
  if (std::isalpha(static_cast<unsigned char>(peek())) || peek() == '_') {
    // `16x128` would otherwise lex as a number and a name; ask for the spaced form.
    tok.kind = Tok::Error;
    tok.text = "invalid number '" + tok.text + peek() +
               "'; separate numbers and names with a space";
    return tok;
  }
  if (isFloat) {
    tok.kind = Tok::Float;
    errno = 0;
    tok.floatValue = std::strtod(tok.text.c_str(), nullptr);
    // strtod sets ERANGE on overflow and on underflow past the normal range; an underflow
    // to zero loses the number entirely, so both are errors.
    if (errno == ERANGE && (std::isinf(tok.floatValue) || tok.floatValue == 0)) {
      tok.kind = Tok::Error;
      tok.text = "number '" + tok.text + "' is out of range for a 64-bit float";
    }
  } else {
    tok.kind = Tok::Int;
    errno = 0;
    tok.intValue = std::strtoll(tok.text.c_str(), nullptr, 10);
    if (errno == ERANGE) {
      tok.kind = Tok::Error;
      tok.text = "integer '" + tok.text + "' does not fit in 64 bits";
    }
    tok.floatValue = static_cast<double>(tok.intValue);
  }
  return tok;
}

Token Lexer::lexString(Token tok) {
  advance(); // opening quote
  std::string value;
  while (true) {
    if (pos >= buf.size() || peek() == '\n') {
      tok.kind = Tok::Error;
      tok.text = "unterminated string; expected '\"' before the end of the line";
      return tok;
    }
    char c = advance();
    if (c == '"')
      break;
    if (c == '\\' && pos < buf.size()) {
      char e = advance();
      value += e == 'n' ? '\n' : e == 't' ? '\t' : e;
      continue;
    }
    value += c;
  }
  tok.kind = Tok::String;
  tok.text = std::move(value);
  return tok;
}

} // namespace llmp::lang
