// RUN: llmp-opt %s --llmp-llvm-phase | FileCheck %s

// Tests how the LLVM phase lowers loops for the CPU: the large elementwise op (64 x 1024
// iterations) becomes one OpenMP parallel loop; the row sum over a 2 x 8 tensor (16
// iterations) stays sequential, and its addition may be reassociated so that it vectorises.
// CHECK-LABEL: llvm.func @cpu_loops
// CHECK: omp.parallel
// CHECK: omp.wsloop
// CHECK: omp.terminator
// CHECK-NOT: omp.parallel
// CHECK: llvm.fadd %{{.+}}, %{{.+}} {fastmathFlags = #llvm.fastmath<contract, reassoc>} : f32
// CHECK: llvm.return
func.func @cpu_loops(%x: tensor<64x1024xf32>, %y: tensor<2x8xf32>) -> (tensor<64x1024xf32>, tensor<2xf32>) {
  %e = tensor.empty() : tensor<64x1024xf32>
  %ex = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>],
                        iterator_types = ["parallel", "parallel"]}
      ins(%x : tensor<64x1024xf32>) outs(%e : tensor<64x1024xf32>) {
  ^bb0(%a: f32, %o: f32):
    %r = math.exp %a : f32
    linalg.yield %r : f32
  } -> tensor<64x1024xf32>
  %zero = arith.constant 0.0 : f32
  %e2 = tensor.empty() : tensor<2xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e2 : tensor<2xf32>) -> tensor<2xf32>
  %s = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i)>],
                       iterator_types = ["parallel", "reduction"]}
      ins(%y : tensor<2x8xf32>) outs(%z : tensor<2xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %r = arith.addf %a, %acc : f32
    linalg.yield %r : f32
  } -> tensor<2xf32>
  return %ex, %s : tensor<64x1024xf32>, tensor<2xf32>
}
