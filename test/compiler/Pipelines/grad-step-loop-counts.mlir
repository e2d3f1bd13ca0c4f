// RUN: llmpc emit %llmp_src/examples/pretrain.llmp --compile-to=grad -o %t.mlir
// RUN: llmp-opt %t.mlir --symbol-dce --llmp-lower-to-linalg | awk -f %S/Inputs/grad-step-counts.awk | FileCheck %s --check-prefix=UNFUSED-LINALG
// RUN: llmp-opt %t.mlir --llmp-linalg-phase | awk -f %S/Inputs/grad-step-counts.awk | FileCheck %s --check-prefix=FUSED-LINALG
// RUN: llmp-opt %t.mlir --symbol-dce --llmp-lower-to-linalg --llmp-llvm-phase --mlir-print-ir-after=llmp-parallelize-loops -o /dev/null 2>&1 | awk -f %S/Inputs/grad-step-counts.awk | FileCheck %s --check-prefix=UNFUSED-LOOPS
// RUN: llmp-opt %t.mlir --llmp-linalg-phase --llmp-llvm-phase --mlir-print-ir-after=llmp-parallelize-loops -o /dev/null 2>&1 | awk -f %S/Inputs/grad-step-counts.awk | FileCheck %s --check-prefix=FUSED-LOOPS

// Tests how many linalg ops, loop nests and GEMM calls the main example's grad_step
// (examples/pretrain.llmp: 4 layers, batch 16 x 128, vocab 2048) has without and with the
// linalg phase (canonicalize, llmp-accumulate-into-matmul, llmp-fuse-elementwise, cse),
// counted by Inputs/grad-step-counts.awk. Unfused: the grad phase's IR through llmp-lower-to-linalg
// alone; fused: through --llmp-linalg-phase. Loop nests are those at the top of grad_step
// after llmp-parallelize-loops (the LLVM phase's IR printed after that pass): parallel ones
// become OpenMP regions. To reproduce a count, run the RUN line's commands by hand.
// A change in the lowering or the fusion changes these numbers; update them with the
// reason in the commit message. Zero fills are memsets (llmp-fills-to-memset), not loop
// nests; a GEMM whose C was only zero-filled overwrites C instead (llmp-linalg-to-lrt,
// accumulate = 0) and its fill is gone, so the memsets left are mostly reductions' inits:
// 41 of the fused step's 104 before that fold, 57 of the unfused step's 172.
// The cross-entropy gradient's per-row log-sum-exp (a libm log) is a loop nest of its own,
// not fused into the (B,T,V) gradient loop that broadcasts it (llmp-fuse-elementwise): one
// sequential nest more.
//
// UNFUSED-LINALG: {{^}}linalg.generic 258, linalg matmuls 115{{$}}
// FUSED-LINALG: {{^}}linalg.generic 129, linalg matmuls 111{{$}}
// UNFUSED-LOOPS: {{^}}loop nests 313: parallel 210, sequential 103; GEMM calls 115{{$}}
// UNFUSED-LOOPS-NEXT: {{^}}memsets 57{{$}}
// FUSED-LOOPS: {{^}}loop nests 168: parallel 128, sequential 40; GEMM calls 111{{$}}
// FUSED-LOOPS-NEXT: {{^}}memsets 41{{$}}
