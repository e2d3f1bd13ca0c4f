// SPDX-License-Identifier: Apache-2.0
/// Tests for runtime/Corpus: OSIS verse extraction (exact text) and the KJV corpus.
#include "runtime/Corpus.h"

#include "TestUtil.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sys/stat.h>

namespace lrt {
namespace {

constexpr const char *kKjvPath = "/usr/share/bibledit/sources/kjv.xml";

// Tests that verse text is extracted with tags stripped, notes dropped, entities decoded and
// whitespace normalised, for both the milestone and the container verse forms.
TEST(CorpusTest, OsisSnippet) {
  const char *xml = R"(<?xml version="1.0" encoding="UTF-8"?>
<osis><osisText><header><title>Not verse text</title></header>
<div type="book" osisID="Gen"><title type="main">THE FIRST BOOK</title>
<chapter osisID="Gen.1"><title type="chapter">CHAPTER 1.</title>
<verse osisID="Gen.1.1" sID="Gen.1.1"/><w lemma="strong:H07225">In the beginning</w> <w lemma="strong:H0430">God</w>
  <w morph="x">created</w>   the heaven.<note type="study">a note: <w>dropped</w> &amp; gone</note><verse eID="Gen.1.1"/>
between verses is dropped
<verse osisID="Gen.1.2" sID="Gen.1.2"/><milestone type="x-p" marker="&#182;"/>Fish &amp; chips &lt;1&gt; &quot;q&quot; &apos;a&apos; caf&#xE9; <transChange type="added">was</transChange>.<!-- comment <verse eID="x"/> --><verse eID="Gen.1.2"/>
<verse osisID="Gen.1.3">Container   form
verse.</verse>
</chapter></div></osisText></osis>)";
  int64_t verses = 0;
  auto text = extractOsisText(xml, &verses);
  ASSERT_TRUE(text) << text.status().message();
  EXPECT_EQ(*text, "In the beginning God created the heaven.\n"
                   "Fish & chips <1> \"q\" 'a' caf\xC3\xA9 was.\n"
                   "Container form verse.\n");
  EXPECT_EQ(verses, 3);
}

// Tests that malformed OSIS input is reported, not crashed on.
TEST(CorpusTest, OsisErrors) {
  auto noVerses = extractOsisText("<osis><p>text</p></osis>");
  ASSERT_FALSE(noVerses);
  EXPECT_NE(noVerses.status().message().find("no verses"), std::string::npos);
  auto badEntity = extractOsisText("<verse sID=\"a\"/>x &bogus; y<verse eID=\"a\"/>");
  ASSERT_FALSE(badEntity);
  EXPECT_NE(badEntity.status().message().find("&bogus;"), std::string::npos);
  auto unterminated = extractOsisText("<verse sID=\"a\"/>x <w");
  EXPECT_FALSE(unterminated);
}

// Tests the plain-text reader (CRLF normalised, lines counted) and its errors.
TEST(CorpusTest, PlainText) {
  std::string dir = test::freshDir();
  std::string path = dir + "/a.txt";
  std::ofstream(path, std::ios::binary) << "one\r\ntwo\nthr\xC3\xA9";
  auto c = readCorpus(path, "text");
  ASSERT_TRUE(c) << c.status().message();
  EXPECT_EQ(c->text, "one\ntwo\nthr\xC3\xA9");
  EXPECT_EQ(c->numUnits, 3);
  EXPECT_EQ(c->numChars, 12);
  EXPECT_EQ(c->numBytes, 13);

  EXPECT_EQ(readCorpus(dir + "/missing.txt", "text").status().code(), StatusCode::NotFound);
  EXPECT_FALSE(readCorpus(path, "xml"));
  std::ofstream(dir + "/bad.txt", std::ios::binary) << "ok\xFF";
  auto bad = readCorpus(dir + "/bad.txt", "text");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("invalid UTF-8 at byte 2"), std::string::npos);
}

// Tests the full KJV: about 4M characters, 31k verses, Gen 1:1 first.
TEST(CorpusTest, KingJamesBible) {
  if (!std::filesystem::exists(kKjvPath))
    GTEST_SKIP() << kKjvPath << " is absent (install Debian package bibledit-data)";
  auto c = readCorpus(kKjvPath, "osis");
  ASSERT_TRUE(c) << c.status().message();
  EXPECT_GT(c->numChars, 3'900'000);
  EXPECT_LT(c->numChars, 4'500'000);
  EXPECT_GT(c->numUnits, 31'000);
  EXPECT_LT(c->numUnits, 31'200);
  EXPECT_EQ(c->unitName, "verses");
  std::string first = c->text.substr(0, c->text.find('\n'));
  EXPECT_EQ(first, "In the beginning God created the heaven and the earth.");
  EXPECT_EQ(c->text.find("lemma="), std::string::npos);
  EXPECT_EQ(c->text.find("Heb. "), std::string::npos) << "notes are dropped";
  EXPECT_EQ(c->text.find('<'), std::string::npos);
  RecordProperty("kjv_chars", std::to_string(c->numChars));
  RecordProperty("kjv_verses", std::to_string(c->numUnits));
}

// Tests that a directory, a FIFO and a device are refused by a stat before any read: a FIFO
// would block the open forever and /dev/zero would fill memory until the process aborts.
TEST(CorpusTest, RejectsNonRegularFiles) {
  std::string dir = test::freshDir();
  auto isDir = readCorpus(dir, "text");
  ASSERT_FALSE(isDir);
  EXPECT_NE(isDir.status().message().find("is a directory"), std::string::npos)
      << isDir.status().message();
  std::string fifo = dir + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto isFifo = readCorpus(fifo, "text");
  ASSERT_FALSE(isFifo);
  EXPECT_NE(isFifo.status().message().find("not a regular file (a FIFO)"), std::string::npos)
      << isFifo.status().message();
  auto isDevice = readCorpus("/dev/zero", "osis");
  ASSERT_FALSE(isDevice);
  EXPECT_NE(isDevice.status().message().find("corpus '/dev/zero': is not a regular file (a "
                                             "character device)"),
            std::string::npos)
      << isDevice.status().message();
}

} // namespace
} // namespace lrt
