# Reads llmp-step-memory's line and prints whether the measured step heap peak equals the
# computed one (test/compiler/Pipelines/step-heap-peak-measured.mlir).
/step heap peak/ {
  for (i = 1; i <= NF; ++i) {
    if ($i == "peak") measured = $(i + 1)
    if ($i == "computed") computed = $(i + 1)
  }
  printf "measured %d, computed %d\n", measured, computed
  printf "measured == computed: %s\n", (computed > 0 && measured == computed) ? "yes" : "no"
}
