// SPDX-License-Identifier: Apache-2.0
/// Corpus readers: plain text and OSIS verse extraction (a small single-pass scanner, no
/// XML library: OSIS Bibles are flat and the scanner keeps memory linear in the input).
#include "runtime/Corpus.h"

#include "runtime/FileUtil.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <sys/stat.h>

namespace lrt {
namespace {

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/// Appends code point `cp` to `out` as UTF-8.
void appendUtf8(std::string &out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

/// The value of attribute `name` inside the tag body `tag` (between '<' and '>'), or
/// nullopt. Attribute names are matched as whole words before '='.
std::optional<std::string_view> attribute(std::string_view tag, std::string_view name) {
  size_t pos = 0;
  while ((pos = tag.find(name, pos)) != std::string_view::npos) {
    bool startOk = pos > 0 && isSpace(tag[pos - 1]);
    size_t eq = pos + name.size();
    while (eq < tag.size() && isSpace(tag[eq]))
      ++eq;
    if (startOk && eq < tag.size() && tag[eq] == '=') {
      size_t q = eq + 1;
      while (q < tag.size() && isSpace(tag[q]))
        ++q;
      if (q < tag.size() && (tag[q] == '"' || tag[q] == '\'')) {
        size_t end = tag.find(tag[q], q + 1);
        if (end != std::string_view::npos)
          return tag.substr(q + 1, end - q - 1);
      }
    }
    pos += name.size();
  }
  return std::nullopt;
}

/// Collects verse text with whitespace normalised.
class VerseWriter {
public:
  explicit VerseWriter(std::string &out) : out_(out) {}
  void text(std::string_view s) {
    for (char c : s) {
      if (isSpace(c)) {
        pendingSpace_ = !verse_.empty();
      } else {
        if (pendingSpace_)
          verse_ += ' ';
        pendingSpace_ = false;
        verse_ += c;
      }
    }
  }
  void codePoint(uint32_t cp) {
    if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r') {
      text(" ");
      return;
    }
    std::string s;
    appendUtf8(s, cp);
    text(s);
  }
  void endVerse() {
    if (!verse_.empty()) {
      out_ += verse_;
      out_ += '\n';
      ++count_;
    }
    verse_.clear();
    pendingSpace_ = false;
  }
  int64_t count() const { return count_; }

private:
  std::string &out_;
  std::string verse_;
  bool pendingSpace_ = false;
  int64_t count_ = 0;
};

/// Decodes the entity starting at xml[pos] == '&'; returns the code point and sets `len`.
Expected<uint32_t> decodeEntity(std::string_view xml, size_t pos, size_t &len) {
  size_t semi = xml.find(';', pos);
  if (semi == std::string_view::npos || semi - pos > 12)
    return Status::invalid(fmt::format("unterminated entity at byte {}", pos));
  std::string_view name = xml.substr(pos + 1, semi - pos - 1);
  len = semi - pos + 1;
  if (name == "amp")
    return uint32_t('&');
  if (name == "lt")
    return uint32_t('<');
  if (name == "gt")
    return uint32_t('>');
  if (name == "quot")
    return uint32_t('"');
  if (name == "apos")
    return uint32_t('\'');
  if (name.size() > 1 && name[0] == '#') {
    bool hex = name[1] == 'x' || name[1] == 'X';
    std::string digits(name.substr(hex ? 2 : 1));
    char *end = nullptr;
    unsigned long cp = std::strtoul(digits.c_str(), &end, hex ? 16 : 10);
    if (!digits.empty() && end && *end == '\0' && cp > 0 && cp <= 0x10FFFF)
      return uint32_t(cp);
  }
  return Status::invalid(fmt::format("unknown entity '&{};' at byte {}", name, pos));
}

} // namespace

int64_t countUtf8Chars(std::string_view s) {
  int64_t n = 0;
  for (unsigned char c : s)
    n += (c & 0xC0) != 0x80;
  return n;
}

int64_t findInvalidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = s[i];
    int extra = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xE ? 2 : (c >> 3) == 0x1E ? 3 : -1;
    if (extra < 0 || i + extra >= s.size() + (extra == 0 ? 1 : 0))
      return int64_t(i);
    for (int k = 1; k <= extra; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80)
        return int64_t(i);
    i += extra + 1;
  }
  return -1;
}

Expected<std::string> extractOsisText(std::string_view xml, int64_t *numVerses) {
  std::string out;
  out.reserve(xml.size() / 6);
  VerseWriter writer(out);
  bool inVerse = false;
  int noteDepth = 0;
  size_t i = 0;
  while (i < xml.size()) {
    char c = xml[i];
    if (c == '<') {
      if (xml.compare(i, 4, "<!--") == 0) {
        size_t end = xml.find("-->", i + 4);
        if (end == std::string_view::npos)
          return Status::invalid(fmt::format("unterminated comment at byte {}", i));
        i = end + 3;
        continue;
      }
      size_t end = xml.find('>', i);
      if (end == std::string_view::npos)
        return Status::invalid(fmt::format("unterminated tag at byte {}", i));
      std::string_view tag = xml.substr(i + 1, end - i - 1);
      i = end + 1;
      bool closing = !tag.empty() && tag[0] == '/';
      bool selfClosing = !tag.empty() && tag.back() == '/';
      size_t nameBegin = closing ? 1 : 0;
      size_t nameEnd = nameBegin;
      while (nameEnd < tag.size() && !isSpace(tag[nameEnd]) && tag[nameEnd] != '/')
        ++nameEnd;
      std::string_view name = tag.substr(nameBegin, nameEnd - nameBegin);
      if (name == "verse") {
        if (closing) { // container form </verse>
          if (inVerse)
            writer.endVerse();
          inVerse = false;
        } else if (attribute(tag, "eID")) {
          if (inVerse)
            writer.endVerse();
          inVerse = false;
        } else if (attribute(tag, "sID") || (!selfClosing && attribute(tag, "osisID"))) {
          if (inVerse) // a start without an end: close the previous verse
            writer.endVerse();
          inVerse = true;
          noteDepth = 0;
        }
      } else if (name == "note" && !selfClosing) {
        noteDepth += closing ? -1 : 1;
        if (noteDepth < 0)
          noteDepth = 0;
      }
      continue;
    }
    // Text run up to the next tag.
    size_t next = xml.find('<', i);
    if (next == std::string_view::npos)
      next = xml.size();
    if (inVerse && noteDepth == 0) {
      size_t j = i;
      while (j < next) {
        // Search only this run: an unbounded find would make the scan quadratic.
        size_t amp = xml.substr(0, next).find('&', j);
        if (amp == std::string_view::npos) {
          writer.text(xml.substr(j, next - j));
          break;
        }
        writer.text(xml.substr(j, amp - j));
        size_t len = 0;
        auto cp = decodeEntity(xml, amp, len);
        if (!cp)
          return cp.status();
        writer.codePoint(*cp);
        j = amp + len;
      }
    }
    i = next;
  }
  if (inVerse)
    writer.endVerse();
  if (writer.count() == 0)
    return Status::invalid("no verses found (expected <verse sID=...>/<verse eID=...> markers)");
  if (numVerses)
    *numVerses = writer.count();
  return out;
}

Expected<Corpus> readCorpus(const std::string &path, const std::string &format) {
  auto fail = [&](Status s) { return s.withContext(fmt::format("corpus '{}'", path)); };
  if (format != "text" && format != "osis")
    return fail(Status::invalid(fmt::format("unknown format '{}'; expected 'text' or 'osis'", format)));
  // stat first: opening a FIFO blocks until a writer appears, and a device such as
  // /dev/zero never ends; only regular files have a size to check.
  struct stat info;
  if (::stat(path.c_str(), &info) != 0)
    return fail(Status::error(StatusCode::NotFound,
                              fmt::format("cannot open: {}", std::strerror(errno))));
  if (S_ISDIR(info.st_mode))
    return fail(Status::invalid("is a directory, not a file"));
  if (!S_ISREG(info.st_mode))
    return fail(Status::invalid(fmt::format(
        "is not a regular file (a {}); the corpus must be a file of known size",
        S_ISFIFO(info.st_mode)   ? "FIFO"
        : S_ISCHR(info.st_mode)  ? "character device"
        : S_ISBLK(info.st_mode)  ? "block device"
        : S_ISSOCK(info.st_mode) ? "socket"
                                 : "special file")));
  // The raw bytes, the text and (for OSIS) the extracted text live together while reading.
  const char *what = nullptr;
  int64_t usable = usableMemoryBytes(&what);
  if (usable > 0 && double(info.st_size) * 2.0 > double(usable))
    return fail(Status::outOfMemory(
        fmt::format("the file is {} and reading it needs about {}; {} {}",
                    formatGiB(double(info.st_size)), formatGiB(2.0 * double(info.st_size)), what,
                    formatGiB(double(usable)))));
  std::string raw;
  try {
    std::ifstream in(path, std::ios::binary);
    if (!in)
      return fail(Status::error(StatusCode::NotFound,
                                fmt::format("cannot open: {}", std::strerror(errno))));
    std::ostringstream buf;
    buf << in.rdbuf();
    if (in.bad())
      return fail(Status::ioError("read failed"));
    raw = std::move(buf).str();
  } catch (const std::bad_alloc &) {
    return fail(Status::outOfMemory(
        fmt::format("out of memory reading {} bytes", int64_t(info.st_size))));
  }
  try {
    Corpus corpus;
    if (format == "osis") {
      auto text = extractOsisText(raw, &corpus.numUnits);
      if (!text)
        return fail(text.status());
      corpus.text = text.take();
      corpus.unitName = "verses";
    } else {
      corpus.text.reserve(raw.size());
      for (size_t k = 0; k < raw.size(); ++k)
        if (!(raw[k] == '\r' && k + 1 < raw.size() && raw[k + 1] == '\n'))
          corpus.text += raw[k];
      int64_t lines = 0;
      for (char c : corpus.text)
        lines += c == '\n';
      if (!corpus.text.empty() && corpus.text.back() != '\n')
        ++lines;
      corpus.numUnits = lines;
      corpus.unitName = "lines";
    }
    if (corpus.text.empty())
      return fail(Status::invalid("empty corpus"));
    if (int64_t bad = findInvalidUtf8(corpus.text); bad >= 0)
      return fail(Status::invalid(fmt::format("invalid UTF-8 at byte {}", bad)));
    corpus.numBytes = int64_t(corpus.text.size());
    corpus.numChars = countUtf8Chars(corpus.text);
    return corpus;
  } catch (const std::bad_alloc &) {
    return fail(Status::outOfMemory(
        fmt::format("out of memory converting {} bytes of text", int64_t(info.st_size))));
  }
}

} // namespace lrt
