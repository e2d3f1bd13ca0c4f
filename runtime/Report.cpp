// SPDX-License-Identifier: Apache-2.0
/// Run reports: metrics.jsonl parsing, chart layout replayed on cairo (PNG) and an SVG
/// writer, and report.html.
#include "runtime/Report.h"

#include "runtime/FileUtil.h"

#include <cairo.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <set>

namespace lrt {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// --- metrics.jsonl ----------------------------------------------------------------------

std::string trimmed(const std::string &s) {
  size_t b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// --- drawing ----------------------------------------------------------------------------

struct Color {
  double r, g, b;
  std::string hex() const {
    return fmt::format("#{:02x}{:02x}{:02x}", int(std::lround(r * 255)), int(std::lround(g * 255)),
                       int(std::lround(b * 255)));
  }
};
// Matplotlib's tab10, so the charts look familiar.
const Color kPalette[] = {{0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173},
                          {0.839, 0.153, 0.157}, {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294},
                          {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498}};
const Color kBlack{0, 0, 0}, kGrid{0.88, 0.88, 0.88}, kWhite{1, 1, 1}, kText{0.15, 0.15, 0.15};
constexpr const char *kFont = "DejaVu Sans";

enum class Anchor { Start, Middle, End };
struct Point {
  double x, y;
};

/// The drawing primitives a chart needs; coordinates in pixels from the top left.
class Canvas {
public:
  virtual ~Canvas() = default;
  virtual void rect(double x, double y, double w, double h, Color fill, const Color *stroke) = 0;
  virtual void line(Point a, Point b, Color c, double width) = 0;
  /// One series: a single polyline through `pts`.
  virtual void polyline(const std::string &name, const std::vector<Point> &pts, Color c,
                        double width) = 0;
  virtual void circle(Point p, double r, Color c) = 0;
  /// Text with its baseline at `p.y`; `vertical` rotates it -90 degrees about `p`.
  virtual void text(Point p, const std::string &s, double size, Anchor anchor, Color c,
                    bool bold = false, bool vertical = false) = 0;
};

/// Text width in pixels from cairo's metrics of kFont (the SVG names the same font).
double textWidth(const std::string &s, double size, bool bold = false) {
  static cairo_surface_t *surface = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 1, 1);
  cairo_t *cr = cairo_create(surface);
  cairo_select_font_face(cr, kFont, CAIRO_FONT_SLANT_NORMAL,
                         bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, size);
  cairo_text_extents_t ext;
  cairo_text_extents(cr, s.c_str(), &ext);
  cairo_destroy(cr);
  return ext.x_advance;
}

class CairoCanvas final : public Canvas {
public:
  explicit CairoCanvas(cairo_t *cr) : cr_(cr) {}
  void rect(double x, double y, double w, double h, Color fill, const Color *stroke) override {
    cairo_rectangle(cr_, x, y, w, h);
    set(fill);
    if (stroke) {
      cairo_fill_preserve(cr_);
      set(*stroke);
      cairo_set_line_width(cr_, 1);
      cairo_stroke(cr_);
    } else {
      cairo_fill(cr_);
    }
  }
  void line(Point a, Point b, Color c, double width) override {
    cairo_move_to(cr_, a.x, a.y);
    cairo_line_to(cr_, b.x, b.y);
    stroke(c, width);
  }
  void polyline(const std::string &, const std::vector<Point> &pts, Color c,
                double width) override {
    for (size_t i = 0; i < pts.size(); ++i)
      (i ? cairo_line_to : cairo_move_to)(cr_, pts[i].x, pts[i].y);
    cairo_set_line_join(cr_, CAIRO_LINE_JOIN_ROUND);
    stroke(c, width);
  }
  void circle(Point p, double r, Color c) override {
    cairo_new_sub_path(cr_);
    cairo_arc(cr_, p.x, p.y, r, 0, 2 * M_PI);
    set(c);
    cairo_fill(cr_);
  }
  void text(Point p, const std::string &s, double size, Anchor anchor, Color c, bool bold,
            bool vertical) override {
    cairo_save(cr_);
    cairo_select_font_face(cr_, kFont, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr_, size);
    cairo_translate(cr_, p.x, p.y);
    if (vertical)
      cairo_rotate(cr_, -M_PI / 2);
    double w = textWidth(s, size, bold);
    cairo_move_to(cr_, anchor == Anchor::Start ? 0 : anchor == Anchor::Middle ? -w / 2 : -w, 0);
    set(c);
    cairo_show_text(cr_, s.c_str());
    cairo_restore(cr_);
  }

private:
  void set(Color c) { cairo_set_source_rgb(cr_, c.r, c.g, c.b); }
  void stroke(Color c, double width) {
    set(c);
    cairo_set_line_width(cr_, width);
    cairo_stroke(cr_);
  }
  cairo_t *cr_;
};

std::string xmlEscape(const std::string &s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    switch (ch) {
    case '<': out += "&lt;"; break;
    case '>': out += "&gt;"; break;
    case '&': out += "&amp;"; break;
    case '"': out += "&quot;"; break;
    case '\'': out += "&#39;"; break;
    default: out += ch;
    }
  }
  return out;
}

class SvgCanvas final : public Canvas {
public:
  SvgCanvas(int width, int height) {
    out_ = fmt::format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
                       "viewBox=\"0 0 {0} {1}\" font-family=\"{2}, sans-serif\">\n",
                       width, height, kFont);
  }
  std::string finish() { return out_ + "</svg>\n"; }
  void rect(double x, double y, double w, double h, Color fill, const Color *stroke) override {
    out_ += fmt::format("<rect x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\" "
                        "fill=\"{}\"{}/>\n",
                        x, y, w, h, fill.hex(),
                        stroke ? fmt::format(" stroke=\"{}\"", stroke->hex()) : "");
  }
  void line(Point a, Point b, Color c, double width) override {
    out_ += fmt::format("<line x1=\"{:.2f}\" y1=\"{:.2f}\" x2=\"{:.2f}\" y2=\"{:.2f}\" "
                        "stroke=\"{}\" stroke-width=\"{}\"/>\n",
                        a.x, a.y, b.x, b.y, c.hex(), width);
  }
  void polyline(const std::string &name, const std::vector<Point> &pts, Color c,
                double width) override {
    out_ += fmt::format("<polyline data-series=\"{}\" fill=\"none\" stroke=\"{}\" "
                        "stroke-width=\"{}\" stroke-linejoin=\"round\" points=\"",
                        xmlEscape(name), c.hex(), width);
    for (size_t i = 0; i < pts.size(); ++i)
      out_ += fmt::format("{}{:.2f},{:.2f}", i ? " " : "", pts[i].x, pts[i].y);
    out_ += "\"/>\n";
  }
  void circle(Point p, double r, Color c) override {
    out_ += fmt::format("<circle cx=\"{:.2f}\" cy=\"{:.2f}\" r=\"{}\" fill=\"{}\"/>\n", p.x, p.y,
                        r, c.hex());
  }
  void text(Point p, const std::string &s, double size, Anchor anchor, Color c, bool bold,
            bool vertical) override {
    const char *a = anchor == Anchor::Start ? "start" : anchor == Anchor::Middle ? "middle" : "end";
    out_ += fmt::format("<text x=\"{:.2f}\" y=\"{:.2f}\" font-size=\"{}\" text-anchor=\"{}\" "
                        "fill=\"{}\"{}{}>{}</text>\n",
                        p.x, p.y, size, a, c.hex(), bold ? " font-weight=\"bold\"" : "",
                        vertical ? fmt::format(" transform=\"rotate(-90 {:.2f} {:.2f})\"", p.x, p.y)
                                 : "",
                        xmlEscape(s));
  }

private:
  std::string out_;
};

// --- chart layout -----------------------------------------------------------------------

/// A data range mapped onto a pixel range (y: bottom to top).
struct Axis {
  double lo, hi;  ///< data (log10 of it on a log axis)
  double p0, p1;  ///< pixels for lo and hi
  bool log = false;
  double map(double v) const {
    double t = log ? std::log10(v) : v;
    return p0 + (t - lo) / (hi - lo) * (p1 - p0);
  }
};

/// Widens an empty range so it can be mapped.
void widen(double &lo, double &hi, double by) {
  if (hi > lo)
    return;
  lo -= by;
  hi += by;
}

/// "Nice" tick values (1, 2, 5 x 10^k) inside [lo, hi], about `target` of them, with the
/// step's number of decimals.
std::vector<std::string> niceTicks(double lo, double hi, int target, std::vector<double> &at) {
  double raw = (hi - lo) / target;
  double mag = std::pow(10, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<std::string> labels;
  double maxAbs = std::max(std::fabs(lo), std::fabs(hi));
  bool sci = maxAbs >= 1e5 || maxAbs < 1e-2;
  int decimals = std::max(0, -int(std::floor(std::log10(step) + 1e-9)));
  for (double k = std::ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k += 1) {
    double v = k * step;
    if (std::fabs(v) < step * 1e-9)
      v = 0;
    at.push_back(v);
    labels.push_back(sci && v != 0 ? fmt::format("{:.1e}", v) : fmt::format("{:.{}f}", v, decimals));
  }
  return labels;
}

/// Tick values on a log10 axis: powers of ten, and 2x, 5x when fewer than 3 fit.
std::vector<std::string> logTicks(double lo, double hi, std::vector<double> &at) {
  std::vector<double> mults = {1};
  if (hi - lo < 2)
    mults = {1, 2, 5};
  std::vector<std::string> labels;
  for (int e = int(std::floor(lo)) ; e <= int(std::ceil(hi)); ++e)
    for (double m : mults) {
      double v = m * std::pow(10.0, e);
      double t = std::log10(v);
      if (t < lo - 1e-9 || t > hi + 1e-9)
        continue;
      at.push_back(v);
      labels.push_back(fmt::format("{:g}", v));
    }
  return labels;
}

void drawChart(Canvas &c, const Chart &chart, int width, int height, const Axis &xa,
               const Axis &ya) {
  const double left = kPlotLeft, right = width - kPlotRight, top = kPlotTop,
               bottom = height - kPlotBottom;
  c.rect(0, 0, width, height, kWhite, nullptr);
  // Grid and tick labels.
  std::vector<double> xt, yt;
  auto xl = niceTicks(xa.lo, xa.hi, 6, xt);
  auto yl = ya.log ? logTicks(ya.lo, ya.hi, yt) : niceTicks(ya.lo, ya.hi, 5, yt);
  for (size_t i = 0; i < xt.size(); ++i) {
    double x = xa.map(xt[i]);
    c.line({x, top}, {x, bottom}, kGrid, 1);
    c.line({x, bottom}, {x, bottom + 5}, kBlack, 1);
    c.text({x, bottom + 18}, xl[i], 11, Anchor::Middle, kText);
  }
  for (size_t i = 0; i < yt.size(); ++i) {
    double y = ya.map(yt[i]);
    c.line({left, y}, {right, y}, kGrid, 1);
    c.line({left - 5, y}, {left, y}, kBlack, 1);
    c.text({left - 8, y + 4}, yl[i], 11, Anchor::End, kText);
  }
  // Series.
  for (size_t s = 0; s < chart.series.size(); ++s) {
    const Series &ser = chart.series[s];
    Color col = kPalette[s % std::size(kPalette)];
    std::vector<Point> pts;
    for (size_t i = 0; i < ser.x.size(); ++i)
      pts.push_back({xa.map(ser.x[i]), ya.map(ser.y[i])});
    if (pts.empty())
      continue;
    c.polyline(ser.name, pts, col, 1.5);
    // Sparse series (evaluations) get markers so single points show.
    if (pts.size() <= 50)
      for (const Point &p : pts)
        c.circle(p, 3, col);
  }
  // Frame, title, axis labels.
  c.line({left, top}, {left, bottom}, kBlack, 1);
  c.line({left, bottom}, {right, bottom}, kBlack, 1);
  c.text({(left + right) / 2, 24}, chart.title, 15, Anchor::Middle, kText, /*bold=*/true);
  c.text({(left + right) / 2, height - 14.0}, chart.xLabel, 12, Anchor::Middle, kText);
  c.text({18, (top + bottom) / 2}, chart.yLabel + (ya.log ? " (log scale)" : ""), 12,
         Anchor::Middle, kText, false, /*vertical=*/true);
  // Legend, top right inside the plot area.
  double lw = 0;
  for (const Series &s : chart.series)
    lw = std::max(lw, textWidth(s.name, 11));
  double boxW = lw + 40, boxH = 8 + 16.0 * chart.series.size(), bx = right - boxW - 8,
         by = top + 8;
  Color border{0.7, 0.7, 0.7};
  c.rect(bx, by, boxW, boxH, kWhite, &border);
  for (size_t s = 0; s < chart.series.size(); ++s) {
    double y = by + 14 + 16.0 * s;
    Color col = kPalette[s % std::size(kPalette)];
    c.line({bx + 8, y - 4}, {bx + 28, y - 4}, col, 2);
    c.text({bx + 34, y}, chart.series[s].name, 11, Anchor::Start, kText);
  }
}

Status writeText(const std::string &path, const std::string &text) {
  return writeFileAtomic(path, text);
}

// --- report.html ------------------------------------------------------------------------

std::string num(double v, int decimals = 4) { return fmt::format("{:.{}f}", v, decimals); }

std::string withCommas(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0)
      out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

/// A plan field as text: integers with thousands separators, other values as JSON.
std::string field(const json &plan, const char *key) {
  if (!plan.contains(key))
    return "?";
  const json &v = plan[key];
  if (v.is_number_integer())
    return withCommas(v.get<int64_t>());
  if (v.is_string())
    return v.get<std::string>();
  return v.dump();
}

/// "pipeline / stage", or "stage" for a stage in no pipeline (plan.json's pipeline null).
std::string stageTitle(const json &plan) {
  if (plan.contains("pipeline") && plan["pipeline"].is_null())
    return field(plan, "stage");
  return field(plan, "pipeline") + " / " + field(plan, "stage");
}

std::string planSection(const json &plan) {
  if (plan.is_null())
    return "<p>No plan.json in the run directory.</p>\n";
  std::vector<std::pair<std::string, std::string>> rows;
  rows.push_back({"pipeline / stage", stageTitle(plan)});
  rows.push_back({"model", fmt::format("{} (dim {}, {} layers, vocab {}, context {})",
                                       field(plan, "model"), field(plan, "dim"),
                                       field(plan, "layers"), field(plan, "vocab"),
                                       field(plan, "context"))});
  rows.push_back({"parameters", field(plan, "num_params")});
  int64_t tokensPerStep = plan.value("batch", int64_t(0)) * plan.value("seq_len", int64_t(0));
  rows.push_back({"batch", fmt::format("{} x {} tokens ({} tokens per step)", field(plan, "batch"),
                                       field(plan, "seq_len"), withCommas(tokensPerStep))});
  rows.push_back({"steps", fmt::format("{} (eval every {})", field(plan, "steps"),
                                       field(plan, "eval_every"))});
  // plan.json has no optimizer or schedule kind yet: the runtime runs AdamW with nanoGPT's
  // warmup + cosine schedule; a later plan field takes precedence.
  std::string betas = plan.contains("betas") ? plan["betas"].dump() : "?";
  rows.push_back({"optimizer",
                  fmt::format("{} (lr {}, betas {}, eps {}, weight decay {}, grad clip {})",
                              plan.contains("optimizer") ? field(plan, "optimizer") : "adamw",
                              field(plan, "lr"), betas, field(plan, "eps"),
                              field(plan, "weight_decay"), field(plan, "grad_clip"))});
  rows.push_back({"schedule", fmt::format("{}: warmup {} steps, lr {} -> min_lr {}",
                                          plan.contains("schedule") ? field(plan, "schedule")
                                                                    : "cosine",
                                          field(plan, "warmup"), field(plan, "lr"),
                                          field(plan, "min_lr"))});
  if (plan.contains("data") && plan["data"].is_object()) {
    const json &d = plan["data"];
    rows.push_back({"data", fmt::format("{} = {} (format {}, split {})", field(d, "name"),
                                        field(d, "path"), field(d, "format"), field(d, "split"))});
  }
  if (plan.contains("tokenizer") && plan["tokenizer"].is_object()) {
    const json &t = plan["tokenizer"];
    rows.push_back({"tokenizer", fmt::format("{} ({}, vocab {})", field(t, "name"),
                                             field(t, "kind"), field(t, "vocab"))});
  }
  rows.push_back({"seed", field(plan, "seed")});
  std::string out = "<table class=\"kv\">\n";
  for (auto &[k, v] : rows)
    out += fmt::format("<tr><th>{}</th><td>{}</td></tr>\n", xmlEscape(k), xmlEscape(v));
  return out + "</table>\n";
}

/// The values of `key` over the rows that have it.
std::vector<std::pair<int64_t, double>> valuesOf(const MetricsLog &log, const std::string &key) {
  std::vector<std::pair<int64_t, double>> out;
  for (const MetricsRow &r : log.rows)
    if (auto it = r.fields.find(key); it != r.fields.end())
      out.push_back({r.step, it->second});
  return out;
}

std::string finalSection(const MetricsLog &log) {
  std::vector<std::pair<std::string, std::string>> rows;
  auto loss = valuesOf(log, "loss"), val = valuesOf(log, "val_loss"),
       tps = valuesOf(log, "tokens_per_s"), elapsed = valuesOf(log, "elapsed_s");
  if (!loss.empty())
    rows.push_back({"train loss", fmt::format("{} (step {}) -> {} (step {})", num(loss.front().second),
                                              loss.front().first, num(loss.back().second),
                                              loss.back().first)});
  if (!val.empty()) {
    double first = val.front().second, last = val.back().second;
    rows.push_back({"validation loss",
                    fmt::format("first {} (step {}) -> last {} (step {}), ratio {:.3f}", num(first),
                                val.front().first, num(last), val.back().first, last / first)});
  }
  for (const char *key : {"lr", "grad_norm"})
    if (auto v = valuesOf(log, key); !v.empty())
      rows.push_back({std::string("final ") + key,
                      fmt::format("{:.4g} (step {})", v.back().second, v.back().first)});
  if (!tps.empty()) {
    // Every step has the same B*T tokens, so tokens over time is the harmonic mean.
    double inv = 0;
    std::vector<double> sorted;
    for (auto &[s, v] : tps) {
      inv += 1 / std::max(v, 1e-9);
      sorted.push_back(v);
    }
    std::sort(sorted.begin(), sorted.end());
    rows.push_back({"throughput", fmt::format("{:.0f} tokens/s overall, median step {:.0f} tokens/s",
                                              double(tps.size()) / inv,
                                              sorted[sorted.size() / 2])});
  }
  if (!elapsed.empty())
    rows.push_back({"elapsed", fmt::format("{:.1f} s", elapsed.back().second)});
  std::string out = "<table class=\"kv\">\n";
  for (auto &[k, v] : rows)
    out += fmt::format("<tr><th>{}</th><td>{}</td></tr>\n", xmlEscape(k), xmlEscape(v));
  out += "</table>\n";
  // Every field: how many rows, first and last value, range.
  std::set<std::string> keys;
  for (const MetricsRow &r : log.rows)
    for (auto &[k, v] : r.fields)
      keys.insert(k);
  out += "<table class=\"grid\"><tr><th>field</th><th>rows</th><th>first</th><th>last</th>"
         "<th>min</th><th>max</th></tr>\n";
  for (const std::string &k : keys) {
    auto v = valuesOf(log, k);
    auto [mn, mx] = std::minmax_element(v.begin(), v.end(),
                                        [](auto &a, auto &b) { return a.second < b.second; });
    out += fmt::format("<tr><td>{}</td><td>{}</td><td>{:.6g}</td><td>{:.6g}</td><td>{:.6g}</td>"
                       "<td>{:.6g}</td></tr>\n",
                       xmlEscape(k), v.size(), v.front().second, v.back().second, mn->second,
                       mx->second);
  }
  return out + "</table>\n";
}

} // namespace

Expected<MetricsLog> parseMetrics(const std::string &text, const std::string &path) {
  MetricsLog log;
  size_t pos = 0;
  int64_t lineNo = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    bool complete = nl != std::string::npos;
    std::string line = trimmed(text.substr(pos, complete ? nl - pos : std::string::npos));
    pos = complete ? nl + 1 : text.size();
    ++lineNo;
    if (line.empty())
      continue;
    json row = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (row.is_discarded()) {
      if (!complete) {
        log.warnings.push_back(fmt::format("{}:{}: ignoring a truncated last line ({} bytes)", path,
                                           lineNo, line.size()));
        break;
      }
      return Status::invalid(fmt::format("{}:{}: malformed JSON line: '{}'", path, lineNo,
                                         line.size() > 60 ? line.substr(0, 60) + "..." : line));
    }
    if (!row.is_object())
      return Status::invalid(fmt::format("{}:{}: expected a JSON object, found {}", path, lineNo,
                                         row.type_name()));
    if (!row.contains("step") || !row["step"].is_number_integer())
      return Status::invalid(fmt::format("{}:{}: row has no integer 'step'", path, lineNo));
    MetricsRow r;
    r.step = row["step"].get<int64_t>();
    for (auto it = row.begin(); it != row.end(); ++it)
      if (it.key() != "step" && it.value().is_number()) {
        double v = it.value().get<double>();
        if (std::isfinite(v))
          r.fields[it.key()] = v;
      }
    log.rows.push_back(std::move(r));
  }
  if (log.rows.empty())
    return Status::invalid(fmt::format("'{}' has no metrics rows", path));
  return log;
}

Status renderChart(const Chart &chart, int width, int height, const std::string &pngPath,
                   const std::string &svgPath) {
  if (width < 200 || height < 150)
    return Status::invalid(fmt::format("chart '{}': {}x{} is too small (at least 200x150)",
                                       chart.name, width, height));
  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  for (const Series &s : chart.series) {
    if (s.x.size() != s.y.size())
      return Status::invalid(fmt::format("chart '{}': series '{}' has {} x and {} y values",
                                         chart.name, s.name, s.x.size(), s.y.size()));
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (chart.logY && !(s.y[i] > 0))
        return Status::invalid(fmt::format("chart '{}': series '{}' has y = {} on a log axis",
                                           chart.name, s.name, s.y[i]));
      double y = chart.logY ? std::log10(s.y[i]) : s.y[i];
      xlo = std::min(xlo, s.x[i]), xhi = std::max(xhi, s.x[i]);
      ylo = std::min(ylo, y), yhi = std::max(yhi, y);
    }
  }
  if (!(xlo <= xhi))
    return Status::invalid(fmt::format("chart '{}' has no points", chart.name));
  widen(xlo, xhi, 1);
  widen(ylo, yhi, chart.logY ? 0.5 : ylo == 0 ? 1 : std::fabs(ylo) * 0.05);
  Axis xa{xlo, xhi, kPlotLeft, width - kPlotRight};
  Axis ya{ylo, yhi, height - kPlotBottom, kPlotTop, chart.logY};

  if (!svgPath.empty()) {
    SvgCanvas svg(width, height);
    drawChart(svg, chart, width, height, xa, ya);
    if (Status st = writeText(svgPath, svg.finish()); !st)
      return st;
  }
  if (!pngPath.empty()) {
    std::unique_ptr<cairo_surface_t, void (*)(cairo_surface_t *)> surface(
        cairo_image_surface_create(CAIRO_FORMAT_ARGB32, width, height), cairo_surface_destroy);
    if (cairo_surface_status(surface.get()) != CAIRO_STATUS_SUCCESS)
      return Status::internal(fmt::format("chart '{}': cairo: {}", chart.name,
                                          cairo_status_to_string(cairo_surface_status(surface.get()))));
    cairo_t *cr = cairo_create(surface.get());
    CairoCanvas canvas(cr);
    drawChart(canvas, chart, width, height, xa, ya);
    cairo_status_t drawn = cairo_status(cr);
    cairo_destroy(cr);
    if (drawn != CAIRO_STATUS_SUCCESS)
      return Status::internal(fmt::format("chart '{}': cairo: {}", chart.name,
                                          cairo_status_to_string(drawn)));
    // Written beside and renamed, like every other output, so a reader never sees half a PNG.
    std::string tmp = pngPath + ".tmp";
    cairo_status_t st = cairo_surface_write_to_png(surface.get(), tmp.c_str());
    if (st != CAIRO_STATUS_SUCCESS)
      return Status::ioError(fmt::format("cannot write '{}': {}", pngPath, cairo_status_to_string(st)));
    std::error_code ec;
    fs::rename(tmp, pngPath, ec);
    if (ec)
      return Status::ioError(fmt::format("cannot write '{}': {}", pngPath, ec.message()));
  }
  return Status::ok();
}

std::vector<Chart> chartsFor(const MetricsLog &log) {
  std::set<std::string> keys;
  for (const MetricsRow &r : log.rows)
    for (auto &[k, v] : r.fields)
      keys.insert(k);
  auto series = [&](const std::string &key, const std::string &name) {
    Series s{name, {}, {}};
    for (auto &[step, v] : valuesOf(log, key)) {
      s.x.push_back(double(step));
      s.y.push_back(v);
    }
    return s;
  };
  std::vector<Chart> charts;
  std::set<std::string> done = {"elapsed_s"};
  auto add = [&](const std::string &name, const std::string &title, const std::string &yLabel,
                 std::vector<std::pair<std::string, std::string>> fields) {
    Chart c{name, title, "step", yLabel, {}};
    for (auto &[key, label] : fields)
      if (keys.count(key)) {
        c.series.push_back(series(key, label));
        done.insert(key);
      }
    if (!c.series.empty())
      charts.push_back(std::move(c));
  };
  add("loss", "Training and validation loss", "loss (nats per token)",
      {{"loss", "train loss"}, {"val_loss", "validation loss"}});
  add("lr", "Learning rate", "learning rate", {{"lr", "lr"}});
  add("grad_norm", "Gradient norm (before clipping)", "grad norm", {{"grad_norm", "grad_norm"}});
  add("throughput", "Throughput", "tokens/s", {{"tokens_per_s", "tokens/s"}});
  std::vector<std::pair<std::string, std::string>> rewards;
  for (const std::string &k : keys)
    if (k.rfind("reward", 0) == 0)
      rewards.push_back({k, k});
  add("reward", "Reward", "reward", rewards);
  for (const std::string &k : keys)
    if (!done.count(k)) {
      std::string stem;
      for (char ch : k)
        stem += std::isalnum((unsigned char)ch) || ch == '_' || ch == '-' ? ch : '_';
      add("metric_" + stem, k, k, {{k, k}});
    }
  return charts;
}

Status writeReport(const std::string &runDir, const ReportOptions &opts, ReportResult *result) {
  try {
    ReportResult res;
    std::error_code ec;
    if (!fs::is_directory(runDir, ec)) {
      // `llmpc report FILE.llmp` is an easy slip: say what the path is instead.
      if (fs::exists(runDir, ec))
        return Status::error(StatusCode::InvalidArgument,
                             fmt::format("'{}' is not a directory; give the run directory "
                                         "that a run wrote, e.g. runs/<pipeline>/<stage>",
                                         runDir));
      return Status::error(StatusCode::NotFound,
                           fmt::format("run directory '{}' does not exist", runDir));
    }
    std::string metricsPath = runDir + "/metrics.jsonl";
    if (!fs::exists(metricsPath, ec))
      return Status::error(StatusCode::NotFound,
                           fmt::format("'{}' does not exist (is '{}' a run directory?)",
                                       metricsPath, runDir));
    auto text = readFile(metricsPath);
    if (!text)
      return text.status();
    auto log = parseMetrics(*text, metricsPath);
    if (!log)
      return log.status();
    res.warnings = log->warnings;

    json plan;
    std::string planPath = runDir + "/plan.json";
    if (fs::exists(planPath, ec)) {
      auto planText = readFile(planPath);
      if (!planText)
        return planText.status();
      plan = json::parse(*planText, nullptr, false);
      if (plan.is_discarded() || !plan.is_object())
        return Status::invalid(fmt::format("'{}' is not a JSON object", planPath));
    } else {
      res.warnings.push_back(fmt::format("'{}' does not exist; the report has no plan", planPath));
    }
    std::string samples;
    bool haveSamples = fs::exists(runDir + "/samples.txt", ec);
    if (haveSamples) {
      auto s = readFile(runDir + "/samples.txt");
      if (!s)
        return s.status();
      samples = *s;
    }

    std::string outDir = opts.outDir.empty() ? runDir + "/report" : opts.outDir;
    if (Status st = makeDirs(outDir); !st)
      return st;
    std::string chartsHtml;
    for (const Chart &chart : chartsFor(*log)) {
      std::string png = outDir + "/" + chart.name + ".png", svg = outDir + "/" + chart.name + ".svg";
      if (Status st = renderChart(chart, opts.width, opts.height, png, svg); !st)
        return st;
      res.files.push_back(png);
      res.files.push_back(svg);
      auto svgText = readFile(svg);
      if (!svgText)
        return svgText.status();
      chartsHtml += fmt::format("<figure>\n{}<figcaption>{} (<a href=\"{}.png\">PNG</a>, "
                                "<a href=\"{}.svg\">SVG</a>)</figcaption></figure>\n",
                                *svgText, xmlEscape(chart.title), chart.name, chart.name);
    }

    std::string title = plan.is_object() ? stageTitle(plan) : runDir;
    std::string html = fmt::format(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
        "<title>llmp report: {0}</title>\n<style>\n"
        "body {{ font-family: 'DejaVu Sans', sans-serif; max-width: 860px; margin: 2em auto; "
        "color: #222; }}\n"
        "table {{ border-collapse: collapse; margin: 0.5em 0 1em; }}\n"
        "th, td {{ padding: 2px 10px; text-align: left; vertical-align: top; }}\n"
        "table.grid td, table.grid th {{ border: 1px solid #ccc; }}\n"
        "table.kv th {{ font-weight: normal; color: #555; }}\n"
        "figure {{ margin: 1em 0; }}\n"
        "pre {{ background: #f6f6f6; padding: 0.8em; white-space: pre-wrap; }}\n"
        "</style>\n</head>\n<body>\n<h1>llmp report: {0}</h1>\n<p>Run directory: "
        "<code>{1}</code>; {2} metrics rows.</p>\n",
        xmlEscape(title), xmlEscape(runDir), log->rows.size());
    html += "<h2>Plan</h2>\n" + planSection(plan);
    html += "<h2>Final metrics</h2>\n" + finalSection(*log);
    html += "<h2>Charts</h2>\n" + chartsHtml;
    html += "<h2>Samples</h2>\n";
    html += haveSamples ? "<pre>" + xmlEscape(samples) + "</pre>\n"
                        : std::string("<p>No samples.txt in the run directory.</p>\n");
    if (!res.warnings.empty()) {
      html += "<h2>Warnings</h2>\n<ul>\n";
      for (const std::string &w : res.warnings)
        html += "<li>" + xmlEscape(w) + "</li>\n";
      html += "</ul>\n";
    }
    html += "</body>\n</html>\n";
    res.htmlPath = outDir + "/report.html";
    if (Status st = writeText(res.htmlPath, html); !st)
      return st;
    res.files.push_back(res.htmlPath);
    if (result)
      *result = std::move(res);
    return Status::ok();
  } catch (const std::exception &e) {
    return Status::internal(fmt::format("report of '{}': {}", runDir, e.what()));
  }
}

} // namespace lrt
