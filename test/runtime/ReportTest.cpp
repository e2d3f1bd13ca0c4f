// SPDX-License-Identifier: Apache-2.0
/// Tests for run reports: metrics parsing, the SVG geometry (one polyline per series, the
/// data extremes on the plot bounds), the PNG header, report.html and the error cases.
#include "runtime/Report.h"

#include "test/runtime/TestUtil.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <regex>
#include <sstream>

namespace lrt {
namespace {

namespace fs = std::filesystem;

std::string slurp(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void put(const std::string &path, const std::string &text) {
  std::ofstream(path, std::ios::binary) << text;
}

// The synthetic run: 10 train steps, evaluations at 0, 5 and 10, rewards at 2, 4, 6, 8 and
// one unknown field (`kl`), which gets a chart of its own.
double lossAt(int s) { return 5.0 - 0.3 * (s - 1); } // 5.0 at step 1 .. 2.3 at step 10
const double kVal[] = {6.0, 4.0, 3.0};               // steps 0, 5, 10

std::string planJson() {
  return R"({"pipeline": "main", "stage": "pretrain", "model": "tiny", "num_params": 1234567,
  "vocab": 512, "context": 64, "dim": 32, "layers": 2, "batch": 8, "seq_len": 64, "steps": 10,
  "eval_every": 5, "warmup": 2, "lr": 0.001, "min_lr": 0.0001, "betas": [0.9, 0.95],
  "eps": 1e-08, "weight_decay": 0.1, "grad_clip": 1.0, "seed": 7,
  "data": {"name": "corpus", "path": "/data/kjv.xml", "format": "osis", "split": 0.95},
  "tokenizer": {"name": "tok", "kind": "bpe", "vocab": 512}, "params": []})";
}

std::string metricsJsonl() {
  std::string out;
  auto eval = [&](int step, double v) {
    out += fmt::format("{{\"step\":{},\"val_loss\":{},\"elapsed_s\":{}}}\n", step, v, step * 0.1);
  };
  eval(0, kVal[0]);
  for (int s = 1; s <= 10; ++s) {
    out += fmt::format("{{\"step\":{},\"loss\":{},\"lr\":{},\"grad_norm\":{},\"tokens_per_s\":{},"
                       "\"elapsed_s\":{}}}\n",
                       s, lossAt(s), 1e-4 * s, 1 + 0.1 * s, 1000 + 10 * s, s * 0.1);
    if (s % 2 == 0 && s < 10)
      out += fmt::format("{{\"step\":{},\"reward\":{},\"reward_std\":{},\"kl\":{}}}\n", s,
                         0.1 * s, 0.01 * s, 0.5);
    if (s == 5)
      eval(5, kVal[1]);
  }
  eval(10, kVal[2]);
  return out;
}

std::string makeRun(const std::string &dir) {
  put(dir + "/plan.json", planJson());
  put(dir + "/metrics.jsonl", metricsJsonl());
  put(dir + "/samples.txt", "--- sample 1 (prompt \"In the beginning\") ---\n"
                            "In the beginning <script>alert(1)</script> & more\n");
  return dir;
}

struct Polyline {
  std::string series;
  std::vector<std::pair<double, double>> pts;
};

std::vector<Polyline> polylines(const std::string &svg) {
  std::vector<Polyline> out;
  std::regex re("<polyline data-series=\"([^\"]*)\"[^>]*points=\"([^\"]*)\"");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), re); it != std::sregex_iterator();
       ++it) {
    Polyline p{(*it)[1], {}};
    std::istringstream pts((*it)[2].str());
    std::string xy;
    while (pts >> xy) {
      size_t comma = xy.find(',');
      p.pts.push_back({std::stod(xy.substr(0, comma)), std::stod(xy.substr(comma + 1))});
    }
    out.push_back(std::move(p));
  }
  return out;
}

/// True when every open tag is closed in order (attributes and text are skipped).
bool tagsBalance(const std::string &xml) {
  std::vector<std::string> stack;
  size_t pos = 0;
  while ((pos = xml.find('<', pos)) != std::string::npos) {
    size_t end = xml.find('>', pos);
    if (end == std::string::npos)
      return false;
    std::string tag = xml.substr(pos + 1, end - pos - 1);
    pos = end + 1;
    if (tag.empty() || tag[0] == '?' || tag[0] == '!' || tag.back() == '/')
      continue;
    std::string name = tag.substr(tag[0] == '/' ? 1 : 0, tag.find_first_of(" \n", 0) - (tag[0] == '/' ? 1 : 0));
    if (tag[0] == '/') {
      if (stack.empty() || stack.back() != name)
        return false;
      stack.pop_back();
    } else {
      stack.push_back(name);
    }
  }
  return stack.empty();
}

uint32_t be32(const std::string &s, size_t at) {
  return uint32_t(uint8_t(s[at])) << 24 | uint32_t(uint8_t(s[at + 1])) << 16 |
         uint32_t(uint8_t(s[at + 2])) << 8 | uint32_t(uint8_t(s[at + 3]));
}

constexpr int kW = 640, kH = 400;

TEST(ReportTest, WritesChartsAndHtml) {
  std::string run = makeRun(test::freshDir());
  ReportOptions opts;
  opts.width = kW;
  opts.height = kH;
  ReportResult res;
  Status st = writeReport(run, opts, &res);
  ASSERT_TRUE(st.isOk()) << st.message();
  EXPECT_TRUE(res.warnings.empty());
  EXPECT_EQ(res.htmlPath, run + "/report/report.html");
  for (const char *name : {"loss", "lr", "grad_norm", "throughput", "reward", "metric_kl"})
    for (const char *ext : {".png", ".svg"})
      EXPECT_TRUE(fs::exists(run + "/report/" + name + ext)) << name << ext;
  EXPECT_EQ(res.files.size(), 6u * 2 + 1);
}

TEST(ReportTest, LossSvgGeometry) {
  std::string run = makeRun(test::freshDir());
  ReportOptions opts;
  opts.width = kW;
  opts.height = kH;
  ASSERT_TRUE(writeReport(run, opts).isOk());
  std::string svg = slurp(run + "/report/loss.svg");
  ASSERT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_TRUE(tagsBalance(svg));
  EXPECT_NE(svg.find(fmt::format("width=\"{}\" height=\"{}\"", kW, kH)), std::string::npos);
  EXPECT_NE(svg.find(">step</text>"), std::string::npos);
  EXPECT_NE(svg.find(">loss (nats per token)</text>"), std::string::npos);
  EXPECT_NE(svg.find(">Training and validation loss</text>"), std::string::npos);
  // Legend entries.
  EXPECT_NE(svg.find(">train loss</text>"), std::string::npos);
  EXPECT_NE(svg.find(">validation loss</text>"), std::string::npos);

  auto lines = polylines(svg);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].series, "train loss");
  EXPECT_EQ(lines[0].pts.size(), 10u); // steps 1..10
  EXPECT_EQ(lines[1].series, "validation loss");
  EXPECT_EQ(lines[1].pts.size(), 3u); // steps 0, 5, 10

  // x spans steps 0..10, y spans 2.3 (last train loss) .. 6.0 (first val loss).
  const double left = kPlotLeft, right = kW - kPlotRight, top = kPlotTop, bottom = kH - kPlotBottom;
  auto px = [&](double step) { return left + (step - 0) / (10 - 0) * (right - left); };
  auto py = [&](double v) { return bottom - (v - 2.3) / (6.0 - 2.3) * (bottom - top); };
  EXPECT_NEAR(lines[0].pts.front().first, px(1), 0.01);
  EXPECT_NEAR(lines[0].pts.front().second, py(5.0), 0.01);
  EXPECT_NEAR(lines[0].pts.back().first, right, 0.01); // the largest x
  EXPECT_NEAR(lines[0].pts.back().second, bottom, 0.01); // the smallest y
  EXPECT_NEAR(lines[1].pts.front().first, left, 0.01);  // step 0
  EXPECT_NEAR(lines[1].pts.front().second, top, 0.01);  // the largest y
  EXPECT_NEAR(lines[1].pts[1].first, px(5), 0.01);
  EXPECT_NEAR(lines[1].pts[1].second, py(4.0), 0.01);
  EXPECT_NEAR(lines[1].pts.back().first, right, 0.01);
  EXPECT_NEAR(lines[1].pts.back().second, py(3.0), 0.01);
}

TEST(ReportTest, RewardAndOtherFieldsGetCharts) {
  std::string run = makeRun(test::freshDir());
  ASSERT_TRUE(writeReport(run, {}).isOk());
  auto reward = polylines(slurp(run + "/report/reward.svg"));
  ASSERT_EQ(reward.size(), 2u);
  EXPECT_EQ(reward[0].series, "reward");
  EXPECT_EQ(reward[1].series, "reward_std");
  EXPECT_EQ(reward[0].pts.size(), 4u); // steps 2, 4, 6, 8
  auto kl = polylines(slurp(run + "/report/metric_kl.svg"));
  ASSERT_EQ(kl.size(), 1u);
  EXPECT_EQ(kl[0].pts.size(), 4u);
  // A constant series is centred: its range is widened, not divided by zero.
  double mid = (kPlotTop + (480 - kPlotBottom)) / 2;
  EXPECT_NEAR(kl[0].pts[0].second, mid, 0.01);
  auto lr = polylines(slurp(run + "/report/lr.svg"));
  ASSERT_EQ(lr.size(), 1u);
  EXPECT_EQ(lr[0].pts.size(), 10u);
}

TEST(ReportTest, PngHeader) {
  std::string run = makeRun(test::freshDir());
  ReportOptions opts;
  opts.width = kW;
  opts.height = kH;
  ASSERT_TRUE(writeReport(run, opts).isOk());
  std::string png = slurp(run + "/report/loss.png");
  ASSERT_GT(png.size(), 33u);
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(png.substr(12, 4), "IHDR");
  EXPECT_EQ(be32(png, 16), uint32_t(kW));
  EXPECT_EQ(be32(png, 20), uint32_t(kH));
}

TEST(ReportTest, HtmlSummary) {
  std::string run = makeRun(test::freshDir());
  ASSERT_TRUE(writeReport(run, {}).isOk());
  std::string html = slurp(run + "/report/report.html");
  EXPECT_TRUE(tagsBalance(html.substr(html.find("<html"))));
  for (const char *s : {"main / pretrain", "tiny (dim 32, 2 layers, vocab 512, context 64)",
                        "1,234,567", "8 x 64 tokens (512 tokens per step)", "10 (eval every 5)",
                        "adamw (lr 0.001", "cosine: warmup 2 steps", "/data/kjv.xml", "osis",
                        "tok (bpe, vocab 512)"})
    EXPECT_NE(html.find(s), std::string::npos) << s;
  // Final validation loss and last/first ratio.
  std::string val = fmt::format("first {:.4f} (step 0) -&gt; last {:.4f} (step 10), ratio {:.3f}",
                                kVal[0], kVal[2], kVal[2] / kVal[0]);
  EXPECT_NE(html.find(val), std::string::npos) << val;
  EXPECT_NE(html.find("ratio 0.500"), std::string::npos);
  // Throughput: 512 tokens per step, so tokens over time is the harmonic mean.
  double inv = 0;
  for (int s = 1; s <= 10; ++s)
    inv += 1.0 / (1000 + 10 * s);
  EXPECT_NE(html.find(fmt::format("{:.0f} tokens/s overall", 10 / inv)), std::string::npos);
  // Charts are inline, samples escaped.
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"), std::string::npos);
  EXPECT_EQ(html.find("<script>"), std::string::npos);
}

TEST(ReportTest, OutDirOption) {
  std::string run = makeRun(test::freshDir());
  ReportOptions opts;
  opts.outDir = run + "/elsewhere/r";
  ASSERT_TRUE(writeReport(run, opts).isOk());
  EXPECT_TRUE(fs::exists(run + "/elsewhere/r/report.html"));
  EXPECT_FALSE(fs::exists(run + "/report"));
}

TEST(ReportTest, LogAxisMapping) {
  std::string dir = test::freshDir();
  Chart c{"g", "grad", "step", "norm", {{"g", {0, 1, 2}, {1, 10, 100}}}, /*logY=*/true};
  ASSERT_TRUE(renderChart(c, kW, kH, "", dir + "/g.svg").isOk());
  auto lines = polylines(slurp(dir + "/g.svg"));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NEAR(lines[0].pts[0].second, kH - kPlotBottom, 0.01);
  EXPECT_NEAR(lines[0].pts[1].second, (kPlotTop + kH - kPlotBottom) / 2, 0.01);
  EXPECT_NEAR(lines[0].pts[2].second, kPlotTop, 0.01);
  Chart bad{"b", "b", "step", "y", {{"b", {0, 1}, {1, 0}}}, true};
  Status st = renderChart(bad, kW, kH, "", dir + "/b.svg");
  EXPECT_EQ(st.code(), StatusCode::InvalidArgument);
  EXPECT_NE(st.message().find("log axis"), std::string::npos) << st.message();
}

TEST(ReportTest, ConstantZeroAndSinglePoint) {
  std::string dir = test::freshDir();
  Chart c{"z", "zero", "step", "y", {{"z", {3, 4}, {0, 0}}, {"one", {5}, {0}}}};
  ASSERT_TRUE(renderChart(c, kW, kH, dir + "/z.png", dir + "/z.svg").isOk());
  auto lines = polylines(slurp(dir + "/z.svg"));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NEAR(lines[0].pts[0].first, kPlotLeft, 0.01);
  EXPECT_NEAR(lines[0].pts[0].second, (kPlotTop + kH - kPlotBottom) / 2, 0.01);
  EXPECT_NEAR(lines[1].pts[0].first, kW - kPlotRight, 0.01);
  Chart empty{"e", "empty", "step", "y", {{"e", {}, {}}}};
  Status st = renderChart(empty, kW, kH, "", dir + "/e.svg");
  EXPECT_EQ(st.code(), StatusCode::InvalidArgument);
  EXPECT_EQ(st.message(), "chart 'e' has no points");
}

TEST(ReportTest, TruncatedLastLineWarns) {
  std::string run = makeRun(test::freshDir());
  put(run + "/metrics.jsonl", metricsJsonl() + "{\"step\":11,\"loss\":2.");
  ReportResult res;
  Status st = writeReport(run, {}, &res);
  ASSERT_TRUE(st.isOk()) << st.message();
  ASSERT_EQ(res.warnings.size(), 1u);
  EXPECT_NE(res.warnings[0].find("truncated last line"), std::string::npos) << res.warnings[0];
  auto lines = polylines(slurp(run + "/report/loss.svg"));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].pts.size(), 10u);
  EXPECT_NE(slurp(res.htmlPath).find("truncated last line"), std::string::npos);
}

TEST(ReportTest, MissingRunDir) {
  std::string dir = test::freshDir() + "/nope";
  Status st = writeReport(dir, {});
  EXPECT_EQ(st.code(), StatusCode::NotFound);
  EXPECT_EQ(st.message(), "run directory '" + dir + "' does not exist");
}

TEST(ReportTest, RunDirIsAFile) {
  // `llmpc report FILE.llmp`: the path exists but is a file, so "does not exist" would be
  // false; the message says what it is instead.
  std::string file = test::freshDir() + "/pipeline.llmp";
  put(file, "stage s {}\n");
  Status st = writeReport(file, {});
  EXPECT_EQ(st.code(), StatusCode::InvalidArgument);
  EXPECT_EQ(st.message(), "'" + file +
                              "' is not a directory; give the run directory that a run wrote, "
                              "e.g. runs/<pipeline>/<stage>");
}

TEST(ReportTest, MissingMetrics) {
  std::string dir = test::freshDir();
  Status st = writeReport(dir, {});
  EXPECT_EQ(st.code(), StatusCode::NotFound);
  EXPECT_NE(st.message().find("metrics.jsonl' does not exist"), std::string::npos) << st.message();
}

TEST(ReportTest, EmptyMetrics) {
  std::string run = makeRun(test::freshDir());
  put(run + "/metrics.jsonl", "\n");
  Status st = writeReport(run, {});
  EXPECT_EQ(st.code(), StatusCode::InvalidArgument);
  EXPECT_EQ(st.message(), "'" + run + "/metrics.jsonl' has no metrics rows");
}

TEST(ReportTest, MalformedLine) {
  std::string run = makeRun(test::freshDir());
  put(run + "/metrics.jsonl", "{\"step\":0,\"val_loss\":6}\n{\"step\":1,\"loss\":\n"
                              "{\"step\":2,\"loss\":4}\n");
  Status st = writeReport(run, {});
  EXPECT_EQ(st.code(), StatusCode::InvalidArgument);
  EXPECT_EQ(st.message(),
            run + "/metrics.jsonl:2: malformed JSON line: '{\"step\":1,\"loss\":'");
}

TEST(ReportTest, RowWithoutStep) {
  auto log = parseMetrics("{\"step\":1,\"loss\":3}\n{\"loss\":2}\n", "m.jsonl");
  ASSERT_FALSE(log.isOk());
  EXPECT_EQ(log.status().message(), "m.jsonl:2: row has no integer 'step'");
  auto arr = parseMetrics("[1, 2]\n", "m.jsonl");
  ASSERT_FALSE(arr.isOk());
  EXPECT_EQ(arr.status().message(), "m.jsonl:1: expected a JSON object, found array");
}

TEST(ReportTest, NullAndNonNumericFieldsAreSkipped) {
  auto log = parseMetrics("{\"step\":1,\"loss\":null,\"note\":\"x\",\"lr\":0.5}\n", "m.jsonl");
  ASSERT_TRUE(log.isOk()) << log.status().message();
  ASSERT_EQ(log->rows.size(), 1u);
  EXPECT_EQ(log->rows[0].fields.size(), 1u);
  EXPECT_EQ(log->rows[0].fields.at("lr"), 0.5);
}

TEST(ReportTest, MissingPlanWarns) {
  std::string run = makeRun(test::freshDir());
  fs::remove(run + "/plan.json");
  ReportResult res;
  ASSERT_TRUE(writeReport(run, {}, &res).isOk());
  ASSERT_EQ(res.warnings.size(), 1u);
  EXPECT_NE(res.warnings[0].find("plan.json' does not exist"), std::string::npos);
  put(run + "/plan.json", "{\"pipeline\": ");
  Status st = writeReport(run, {});
  EXPECT_EQ(st.code(), StatusCode::InvalidArgument);
  EXPECT_EQ(st.message(), "'" + run + "/plan.json' is not a JSON object");
}

} // namespace
} // namespace lrt
