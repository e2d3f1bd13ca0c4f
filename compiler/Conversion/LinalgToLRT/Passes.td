// SPDX-License-Identifier: Apache-2.0
/// Conversion of buffer-level linalg contractions to kernel library calls.
#ifndef LLMP_CONVERSION_LINALGTOLRT_PASSES_TD
#define LLMP_CONVERSION_LINALGTOLRT_PASSES_TD

include "mlir/Pass/PassBase.td"

def LLMPLinalgToLRT : Pass<"llmp-linalg-to-lrt", "ModuleOp"> {
  let summary = "Replace f32 linalg.matmul / batch_matmul on memrefs with BLAS kernel calls";
  let description = [{
    After bufferization, each f32 `linalg.matmul` (resp. `linalg.batch_matmul`) on memrefs
    whose indexing maps are the default or transpose an operand becomes a call to
    `@lrt_matmul_f32` (resp. `@lrt_batch_matmul_f32`) from kernels/cpu, declared with
    `llvm.emit_c_interface`. Both accumulate into C, as linalg does.

    Before:
    ```mlir
    linalg.matmul ins(%a, %b : memref<4x8xf32>, memref<8x2xf32>) outs(%c : memref<4x2xf32>)
    ```
    After:
    ```mlir
    %ca = memref.cast %a : memref<4x8xf32> to memref<?x?xf32, strided<[?, ?], offset: ?>>
    ...
    call @lrt_matmul_f32(%false, %false, %ca, %cb, %cc) : (i32, i32, ...) -> ()
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect", "::mlir::func::FuncDialect",
                           "::mlir::memref::MemRefDialect"];
}

def LLMPApproximateMath : Pass<"llmp-approximate-math", "ModuleOp"> {
  let summary = "Replace f32 math.exp with an inline polynomial the loop vectoriser can widen";
  let description = [{
    `math.exp` lowers to a call of libm's `expf`, which LLVM's loop vectoriser cannot widen
    (the JIT has no vector math library), so every softmax and cross-entropy loop runs one
    scalar call per element. This pass rewrites f32 `math.exp` into MLIR's polynomial
    approximation (Cody-Waite range reduction, a degree-5 polynomial, exponent bits built
    with integer ops; overflow, underflow, -inf and NaN handled, about 1 ulp) made of
    arith/math.fma ops only, which vectorise.

    Before:
    ```mlir
    %e = math.exp %x : f32
    ```
    After:
    ```mlir
    %r = math.fma ... : f32   // no math.exp left
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect", "::mlir::math::MathDialect",
                           "::mlir::vector::VectorDialect"];
}

#endif
