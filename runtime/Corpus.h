// SPDX-License-Identifier: Apache-2.0
/// Reads the training text of a `dataset` declaration: plain UTF-8 text, or the verse text
/// of an OSIS XML Bible (e.g. Debian bibledit-data's /usr/share/bibledit/sources/kjv.xml).
#pragma once

#include "runtime/Status.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace lrt {

/// The text the tokenizer is trained on and the model learns from.
struct Corpus {
  std::string text;      ///< UTF-8; for "osis" one verse per line, each ending in '\n'
  int64_t numBytes = 0;  ///< text.size()
  int64_t numChars = 0;  ///< Unicode code points in `text` (UTF-8 lead bytes)
  int64_t numUnits = 0;  ///< verses ("osis") or lines ("text")
  std::string unitName;  ///< "verses" or "lines", for reports
};

/// Extracts the verse text of an OSIS document.
///
/// Verse text is everything between a verse start and its end: the milestone form
/// `<verse sID=".."/> ... <verse eID=".."/>` (used by kjv.xml) and the container form
/// `<verse osisID="..">...</verse>` are both accepted. Inside a verse, tags are stripped,
/// `<note>...</note>` contents are dropped (also nested notes), the XML entities
/// `&amp; &lt; &gt; &quot; &apos; &#N; &#xN;` are decoded, runs of whitespace become one
/// space and the verse is trimmed. Empty verses are skipped. Each verse is followed by '\n'.
/// `numVerses` (optional) receives the number of verses written.
///
/// Errors: InvalidArgument for an unterminated tag, comment or entity, an unknown entity,
/// or a document with no verses.
Expected<std::string> extractOsisText(std::string_view xml, int64_t *numVerses = nullptr);

/// Reads the corpus at `path` in `format` ("text": plain UTF-8, '\r\n' becomes '\n';
/// "osis": see extractOsisText).
///
/// Errors: NotFound/IoError if the file cannot be read, InvalidArgument for an unknown
/// format, invalid UTF-8 (with the byte offset), or an empty corpus.
Expected<Corpus> readCorpus(const std::string &path, const std::string &format);

/// Number of code points in the UTF-8 string `s` (counts non-continuation bytes).
int64_t countUtf8Chars(std::string_view s);

/// Byte offset of the first invalid UTF-8 sequence in `s`, or -1 if `s` is valid.
int64_t findInvalidUtf8(std::string_view s);

} // namespace lrt
