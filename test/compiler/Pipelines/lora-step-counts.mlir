// RUN: llmpc emit %S/Inputs/qlora-tiny.llmp --stage qlora --compile-to=grad -o %t.mlir
// RUN: llmp-opt %t.mlir --symbol-dce --llmp-lower-to-linalg --canonicalize --llmp-fuse-elementwise --canonicalize --cse | awk -f %S/Inputs/grad-step-counts.awk | FileCheck %s --check-prefix=SUMS
// RUN: llmp-opt %t.mlir --llmp-linalg-phase | awk -f %S/Inputs/grad-step-counts.awk | FileCheck %s --check-prefix=ACCUMULATED
// RUN: llmp-opt %t.mlir --llmp-linalg-phase | FileCheck %s --check-prefix=APPLY

// Tests the size of a QLoRA stage's step functions (Inputs/qlora-tiny.llmp: 2 layers,
// 14 adapted NF4 matrices, 28 adapter tensors), which set its JIT time.
//
// grad_step, counted by Inputs/grad-step-counts.awk, without llmp-accumulate-into-matmul
// (prefix SUMS, the linalg phase's other passes) and with it (ACCUMULATED, the phase).
// The pass removes 60 of the 142 linalg.generic (82 left, 28 of them the NF4 products),
// each a loop nest: per adapted matrix the sum of the adapter's output and the base's,
// the sum of the input gradients of both paths and the two sums of the adapters'
// gradients into `grads` (14 * 4 = 56), and 4 residual sums (x + the output of wo or
// w_down). The GEMMs stay 95. One generic is the cross-entropy gradient's per-row
// log-sum-exp, which llmp-fuse-elementwise keeps out of the (B,T,V) loop (a libm log).
// SUMS: {{^}}linalg.generic 142, linalg matmuls 95{{$}}
// ACCUMULATED: {{^}}linalg.generic 82, linalg matmuls 95{{$}}
//
// apply_step: the 28 adapter tensors follow each other in the flat buffer and share the
// decay flag, so one reduction for the squared gradient norm and one AdamW loop, instead
// of one reduction per tensor.
// APPLY-LABEL: func.func @apply_step
// APPLY-COUNT-2: linalg.generic
// APPLY-NOT: linalg.generic
// APPLY-LABEL: func.func @eval_step

