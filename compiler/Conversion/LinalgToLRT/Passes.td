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
    `llvm.emit_c_interface`. Their third argument, `accumulate`, picks BLAS's beta: 1
    accumulates into C as linalg does (C += op(A) op(B)); 0 overwrites C (C = op(A) op(B),
    C not read). A GEMM overwrites when C's contents are a zero fill nothing else reads:
    walking back from the matmul in its block, the first op that may touch C's buffer (a
    memory effect on C or a view of it, a value that may alias it, or undeclared effects)
    is a `linalg.fill` of +0.0 whose output is C's very memref, and neither input may alias
    C. That fill is then erased: one call replaces the fill (a memset, or an OpenMP loop)
    and the zero-reading GEMM. A `linalg.generic`
    tagged `llmp.matmul_nf4` (the lowering of `llmp.matmul_nf4`: ins x and the i8 NF4 blob,
    outs C) becomes a call to `@lrt_matmul_nf4_f32(tb, rows, cols, block, double_quant, x,
    blob, C)`, the fused dequantize-and-multiply kernel (kernels/cpu/Nf4Matmul.h).

    Before:
    ```mlir
    %c = memref.alloc() : memref<4x2xf32>
    linalg.fill ins(%zero : f32) outs(%c : memref<4x2xf32>)
    linalg.matmul ins(%a, %b : memref<4x8xf32>, memref<8x2xf32>) outs(%c : memref<4x2xf32>)
    linalg.matmul ins(%a, %d : memref<4x8xf32>, memref<8x2xf32>) outs(%c : memref<4x2xf32>)
    ```
    After:
    ```mlir
    %c = memref.alloc() : memref<4x2xf32>
    %ca = memref.cast %a : memref<4x8xf32> to memref<?x?xf32, strided<[?, ?], offset: ?>>
    ...
    call @lrt_matmul_f32(%false, %false, %false, %ca, %cb, %cc) : (i32, i32, i32, ...) -> ()
    ...
    call @lrt_matmul_f32(%false, %false, %true, %ca, %cd, %cc) : (i32, i32, i32, ...) -> ()
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

def LLMPParallelizeLoops : Pass<"llmp-parallelize-loops", "ModuleOp"> {
  let summary = "Keep only outermost, large scf.parallel loops parallel; serialise the rest";
  let description = [{
    Runs after `convert-linalg-to-parallel-loops`, which gives every parallel dimension of
    every linalg op an `scf.parallel`, also inside reduction loops (an RMSNorm weight
    gradient, parallel over D inside the sum over B and T, would fork 2,048 times per
    call). `convert-scf-to-openmp` then turns each remaining `scf.parallel` into one
    OpenMP parallel region (`omp.parallel` + `omp.wsloop`, static schedule).

    This pass keeps an `scf.parallel` parallel only when it is not nested in another loop
    and its loop nest runs at least `min-iterations` innermost iterations (static trip
    counts multiplied), so that a fork (about a microsecond) is paid only where there is
    work to share. Every other `scf.parallel` becomes a nest of `scf.for` in the same
    order. Each iteration of a kept loop writes disjoint elements (linalg parallel
    dimensions), and reductions stay sequential `scf.for` inside one thread, so results do
    not depend on the number of threads: runs are bitwise reproducible.

    A kept loop of several dimensions with no loop in its body (an elementwise op) keeps
    all but its last dimension parallel and runs the last (at least `min-inner-iterations`
    long) as an `scf.for` inside, which LLVM vectorises: `convert-scf-to-openmp` would
    collapse all dimensions into one counter (`omp.loop_nest collapse(n)`), whose
    recovered indices the loop vectoriser cannot bound. When its outer dimensions run
    fewer than `min-parallel-iterations` iterations (a (1, 1, V) decode loop), the last
    dimension is cut into chunks and the chunk index is one more parallel dimension, so
    that the threads still share the work.

    Before:
    ```mlir
    scf.for %b = %c0 to %c16 step %c1 {
      scf.parallel (%d) = (%c0) to (%c128) step (%c1) { ... }
    }
    ```
    After:
    ```mlir
    scf.for %b = %c0 to %c16 step %c1 {
      scf.for %d = %c0 to %c128 step %c1 { ... }
    }
    ```
  }];
  let options = [
    Option<"minIterations", "min-iterations", "int64_t", /*default=*/"32768",
           "smallest static iteration count of a loop nest that is run in parallel">,
    Option<"minInnerIterations", "min-inner-iterations", "int64_t", /*default=*/"16",
           "smallest last dimension of a kept elementwise loop that becomes an inner scf.for">,
    Option<"minParallelIterations", "min-parallel-iterations", "int64_t", /*default=*/"64",
           "outer iterations below which the last dimension is also cut into parallel chunks">
  ];
  let dependentDialects = ["::mlir::scf::SCFDialect"];
}

def LLMPReassociateReductions : Pass<"llmp-reassociate-reductions", "ModuleOp"> {
  let summary = "Allow reassociation of floating-point ops in linalg reduction bodies";
  let description = [{
    LLVM's loop vectoriser widens a floating-point reduction (a sum, a max) only when its
    combining instruction may be reassociated: summing 8 or 16 partial sums in vector lanes
    changes the order of additions. Without the flag each softmax, log-sum-exp, RMSNorm
    and norm reduction runs one scalar add per element ("cannot prove it is safe to
    reorder floating-point operations"). This pass sets `fastmath<reassoc, contract>` on the
    arith floating-point ops in the body of every `linalg.generic` / `linalg.reduce` with a
    reduction iterator (and only there: elementwise code keeps IEEE semantics). Results
    change within rounding (pairwise-like summation is usually more accurate than the
    sequential sum) and stay deterministic: the same code sums in the same order on every
    run.

    Before:
    ```mlir
    linalg.generic {iterator_types = ["parallel", "reduction"]} ... {
      %s = arith.addf %x, %acc : f32
    ```
    After:
    ```mlir
      %s = arith.addf %x, %acc fastmath<reassoc,contract> : f32
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect", "::mlir::linalg::LinalgDialect"];
}

def LLMPDuplicateFills : Pass<"llmp-duplicate-fills", "ModuleOp"> {
  let summary = "Give every destination operand its own linalg.fill, so bufferization copies no zeros";
  let description = [{
    The linalg phase ends with CSE, which merges every `linalg.fill` of the same value
    into the same shape: one zero tensor then serves as the init (`outs`) of all the
    GEMMs and reductions of that shape in a step. One-shot bufferization writes each op's
    result into its init's buffer; an init that is still read later (by the next op that
    shares it) is copied first, so every GEMM of a step began with a `memref.copy` of a
    zero buffer into a fresh one (SmolLM2-135M's LoRA `grad_step`: 2,054 copies, 3.3 GB
    per step), and the shared zero buffers stayed alive across the whole step.

    This pass runs on tensors right before bufferization. Each use of a `linalg.fill`
    (on a `tensor.empty`) as the init of a destination-style op gets a fill of its own on
    a `tensor.empty` of its own, created right before that op; bufferization then fills
    the op's fresh buffer in place (writes only) and copies nothing. Uses as an input keep
    the original fill, which is erased when nothing reads it any more.

    Before:
    ```mlir
    %z = linalg.fill ins(%cst : f32) outs(%e : tensor<4x2xf32>) -> tensor<4x2xf32>
    %c1 = linalg.matmul ins(%a, %b : ...) outs(%z : tensor<4x2xf32>) -> tensor<4x2xf32>
    %c2 = linalg.matmul ins(%a, %d : ...) outs(%z : tensor<4x2xf32>) -> tensor<4x2xf32>
    ```
    After:
    ```mlir
    %e1 = tensor.empty() : tensor<4x2xf32>
    %z1 = linalg.fill ins(%cst : f32) outs(%e1 : tensor<4x2xf32>) -> tensor<4x2xf32>
    %c1 = linalg.matmul ins(%a, %b : ...) outs(%z1 : tensor<4x2xf32>) -> tensor<4x2xf32>
    %e2 = tensor.empty() : tensor<4x2xf32>
    %z2 = linalg.fill ins(%cst : f32) outs(%e2 : tensor<4x2xf32>) -> tensor<4x2xf32>
    %c2 = linalg.matmul ins(%a, %d : ...) outs(%z2 : tensor<4x2xf32>) -> tensor<4x2xf32>
    ```
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect", "::mlir::tensor::TensorDialect"];
}

def LLMPFillsToMemset : Pass<"llmp-fills-to-memset", "ModuleOp"> {
  let summary = "Turn zero linalg.fill ops on contiguous buffers into llvm.intr.memset";
  let description = [{
    After bufferization every GEMM and reduction starts from a `linalg.fill` of zero into
    its own fresh buffer (`llmp-duplicate-fills`); `llmp-linalg-to-lrt` drops the GEMMs'
    fills (the calls overwrite C), so this pass sees mostly reductions' inits (41 per
    `grad_step` of examples/pretrain.llmp, 104 before). As loops, each such fill of at least
    `min-iterations` elements became an OpenMP region (outlined function, fork call, a
    vectorised loop nest) and the rest loop nests of their own: for SmolLM2-135M's SFT
    stage 855 more parallel regions, which cost about 40% of the JIT's opt and codegen
    time (docs/compiler.md). A fill of a constant whose bits are all zero into a memref
    with a static shape and the identity layout (one contiguous run of bytes from its
    aligned pointer) becomes one `llvm.intr.memset` instead: nothing for LLVM to
    optimise, and libc's memset at run time. Other fills (non-zero values such as a max's
    -inf, strided views) stay linalg ops.

    Before:
    ```mlir
    linalg.fill ins(%zero : f32) outs(%buf : memref<1024x576xf32>)
    ```
    After:
    ```mlir
    %a = memref.extract_aligned_pointer_as_index %buf : memref<1024x576xf32> -> index
    %i = arith.index_cast %a : index to i64
    %p = llvm.inttoptr %i : i64 to !llvm.ptr
    "llvm.intr.memset"(%p, %c0_i8, %c2359296_i64) <{isVolatile = false}> : (!llvm.ptr, i8, i64) -> ()
    ```
  }];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect", "::mlir::arith::ArithDialect",
                           "::mlir::memref::MemRefDialect"];
}

def LLMPFinalizeMemRefToLLVM : Pass<"llmp-finalize-memref-to-llvm", "ModuleOp"> {
  let summary = "finalize-memref-to-llvm{use-generic-functions} with alias scopes on the "
                "loads and stores of OpenMP regions";
  let description = [{
    Inside an outlined OpenMP function every buffer's base pointer is loaded from a memref
    descriptor, so LLVM cannot tell a loop's inputs from its outputs: a row max kept its
    accumulator's store inside the loop ("value that could not be identified as reduction
    is used outside the loop") and a 32-element transpose copy was unrolled, then not
    SLP-vectorised (loads clobbered by stores). This pass traces each memref.load /
    memref.store inside an `omp.parallel` to its buffer (a memref.alloc / alloca defined
    outside the region, or a function argument, through view, subview, reinterpret_cast,
    cast, expand/collapse_shape and extract_strided_metadata) and, for static strided
    types, to the byte interval it may touch (memref.view's constant byte shift plus
    offset and extent). Per region (one alias scope domain), accesses through provably
    disjoint places (two allocations; an allocation and an argument; one buffer, e.g. the
    static arena, at non-overlapping intervals) get `noalias_scopes` of each other; two
    function arguments are never claimed apart, and accesses that cannot be traced get
    no scopes. Then it lowers memref to LLVM as finalize-memref-to-llvm with
    use-generic-functions does, copying the scopes onto llvm.load / llvm.store.

    ```mlir
    // in an omp.parallel: %in = memref.view %arena[%c0][], %out = memref.view %arena[%c4096][]
    %x = memref.load %in[%i] : memref<1024xf32>
    memref.store %x, %out[%i] : memref<1024xf32>
    // ->
    %x = llvm.load %p {alias_scopes = [#in], noalias_scopes = [#out]} : !llvm.ptr -> f32
    llvm.store %x, %q {alias_scopes = [#out], noalias_scopes = [#in]} : f32, !llvm.ptr
    ```
  }];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect"];
}

#endif
