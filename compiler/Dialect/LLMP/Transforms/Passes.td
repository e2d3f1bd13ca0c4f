// SPDX-License-Identifier: Apache-2.0
/// Transformation passes on the llmp dialect.
#ifndef LLMP_TRANSFORMS_PASSES_TD
#define LLMP_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def LLMPAutodiff : Pass<"llmp-autodiff", "ModuleOp"> {
  let summary = "Reverse-mode differentiation of functions marked llmp.differentiate";
  let description = [{
    For each `func.func @f` with the unit attribute `llmp.differentiate` that returns one
    `tensor<f32>`, adds `@f_grad` with the same arguments that returns the loss followed by
    the gradient of every argument carrying `llmp.param`, in argument order. Gradients come
    from `DifferentiableOpInterface::buildGradients`, visited in reverse program order;
    values used several times get their gradients summed with `llmp.add`. Parameters
    without a gradient path get zeros.

    Before:
    ```mlir
    func.func @f(%w: tensor<4xf32> {llmp.param = "w"}) -> tensor<f32> attributes {llmp.differentiate} {
      %m = llmp.mean %w : (tensor<4xf32>) -> tensor<f32>
      return %m : tensor<f32>
    }
    ```
    After (added):
    ```mlir
    func.func @f_grad(%w: tensor<4xf32> {llmp.param = "w"}) -> (tensor<f32>, tensor<4xf32>) {
      %m = llmp.mean %w : (tensor<4xf32>) -> tensor<f32>
      %one = arith.constant dense<1.0> : tensor<f32>
      %g = llmp.splat %one {scale = 2.5e-01 : f32} : (tensor<f32>) -> tensor<4xf32>
      return %m, %g : tensor<f32>, tensor<4xf32>
    }
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect", "::mlir::llmp::LLMPDialect"];
}

def LLMPApplyLora : Pass<"llmp-apply-lora", "ModuleOp"> {
  let summary = "LoRA adapters on targeted matmul weights; the base becomes frozen";
  let description = [{
    Rewrites every `llmp.matmul %x, %W` whose weight is a targeted parameter into
    `x @ W + scale * (dropout(x) @ A^T) @ B^T` with new trainable arguments
    `<W>.lora_A` [rank, in] and `<W>.lora_B` [out, rank] (PEFT's layout), scale =
    alpha / rank (alpha / sqrt(rank) with rslora). Every base parameter becomes frozen
    (`llmp.frozen`, `llmp.byte_offset` into a frozen byte buffer of `llmp.frozen_bytes`);
    `llmp.num_params` counts only the adapters. With dropout > 0 the function marked
    `llmp.differentiate` gains a last argument `tensor<2xi32> {llmp.rng}` (the dropout key
    that llmp-build-steps fills). The new ops carry the original matmul's location.

    Before:
    ```mlir
    func.func @logits(%w: tensor<8x4xf32> {llmp.param = "l.wq", llmp.offset = 0 : i64, llmp.decay},
                      %x: tensor<2x8xf32>) -> tensor<2x4xf32> {
      %y = llmp.matmul %x, %w : (tensor<2x8xf32>, tensor<8x4xf32>) -> tensor<2x4xf32>
      return %y : tensor<2x4xf32>
    }
    ```
    After (rank 2, alpha 4):
    ```mlir
    func.func @logits(%w: tensor<8x4xf32> {llmp.byte_offset = 0 : i64, llmp.frozen, llmp.param = "l.wq"},
                      %a: tensor<2x8xf32> {llmp.decay, llmp.offset = 0 : i64, llmp.param = "l.wq.lora_A"},
                      %b: tensor<4x2xf32> {llmp.decay, llmp.offset = 16 : i64, llmp.param = "l.wq.lora_B"},
                      %x: tensor<2x8xf32>) -> tensor<2x4xf32> {
      %y = llmp.matmul %x, %w : (tensor<2x8xf32>, tensor<8x4xf32>) -> tensor<2x4xf32>
      %u = llmp.matmul %x, %a {transpose_b} : (tensor<2x8xf32>, tensor<2x8xf32>) -> tensor<2x2xf32>
      %s = arith.constant dense<2.0> : tensor<2x2xf32>
      %us = llmp.mul %u, %s : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
      %v = llmp.matmul %us, %b {transpose_b} : (tensor<2x2xf32>, tensor<4x2xf32>) -> tensor<2x4xf32>
      %z = llmp.add %y, %v : (tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<2x4xf32>
      return %z : tensor<2x4xf32>
    }
    ```
  }];
  let options = [
    Option<"rank", "rank", "int64_t", "8", "adapter rank r">,
    Option<"alpha", "alpha", "double", "0.0", "LoRA alpha (0: the rank)">,
    Option<"rslora", "rslora", "bool", "false", "scale alpha / sqrt(rank) instead of alpha / rank">,
    Option<"dropout", "dropout", "double", "0.0", "dropout probability on the adapter input">,
    ListOption<"targets", "targets", "std::string",
               "parameter names, last name components (wq), globs, or all_linear">,
    Option<"seed", "seed", "uint64_t", "0", "seed of the dropout masks">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect", "::mlir::llmp::LLMPDialect"];
}

def LLMPBuildSteps : Pass<"llmp-build-steps", "ModuleOp"> {
  let summary = "Build the train/eval/logits step functions over flat buffers";
  let description = [{
    From `@loss`, `@loss_grad` (see `llmp-autodiff`) and `@logits`, builds the C-ABI entry
    points of runtime/StepABI.h: `train_step` (loss, gradients, global gradient norm,
    clipping and an in-place bias-corrected AdamW update over the flat `params`, `m`, `v`
    buffers), `eval_step` (loss) and `logits_step` (logits), each with
    `llvm.emit_c_interface`. Parameter `i` is the slice at its `llmp.offset` of the flat
    `memref<Nxf32>` (N = module attribute `llmp.num_params`), viewed with its tensor shape.
    `@loss`, `@loss_grad` and `@logits` become private, their bodies cloned into the steps.

    After (sketch):
    ```mlir
    func.func @train_step(%params: memref<Nxf32>, %grads: memref<Nxf32>, %m: memref<Nxf32>,
        %v: memref<Nxf32>, %tokens: memref<BxTxi32>, %targets: memref<BxTxi32>,
        %hyper: memref<8xf32>, %metrics: memref<4xf32>) attributes {llvm.emit_c_interface}
    ```
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::bufferization::BufferizationDialect",
    "::mlir::linalg::LinalgDialect", "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect", "::mlir::tensor::TensorDialect"
  ];
}

def LLMPQuantizeBase : Pass<"llmp-quantize-base", "ModuleOp"> {
  let summary = "Store the frozen linear weights of a LoRA module as NF4 (QLoRA)";
  let description = [{
    After `llmp-apply-lora`, for a stage with `base: nf4(block, double_quant)`: every frozen
    parameter argument used only as the weight of `llmp.matmul` (2-D, lhs not transposed)
    becomes the i8 blob of its NF4 tensor (kernels/cpu/Quant.h `Nf4Layout`) marked
    `llmp.nf4 = {block, double_quant}`, and its matmuls become `llmp.matmul_nf4` at the same
    locations. Frozen byte offsets (64-byte aligned, argument order) and the module's
    `llmp.frozen_bytes` are recomputed; other frozen parameters stay fp32.

    Before / after (4 x 6 weight, block 64, double quantization: 24 bytes):
    ```mlir
    func.func @loss(%w: tensor<4x6xf32> {llmp.byte_offset = 0 : i64, llmp.frozen, llmp.param = "wq"}, ...
      %y = llmp.matmul %x, %w : (tensor<3x4xf32>, tensor<4x6xf32>) -> tensor<3x6xf32>
    func.func @loss(%w: tensor<24xi8> {llmp.byte_offset = 0 : i64, llmp.frozen, llmp.nf4 = {block = 64 : i64, double_quant = true}, llmp.param = "wq"}, ...
      %y = llmp.matmul_nf4 %x, %w {block = 64 : i64, cols = 6 : i64, double_quant, rows = 4 : i64} : (tensor<3x4xf32>, tensor<24xi8>) -> tensor<3x6xf32>
    ```
  }];
  let options = [
    Option<"block", "block", "int64_t", "64", "weights per absmax block">,
    Option<"doubleQuant", "double-quant", "bool", "true",
           "quantize the absmax values to 8 bits (256 per fp32 scale)">,
  ];
  let dependentDialects = ["::mlir::llmp::LLMPDialect"];
}

def LLMPBf16Base : Pass<"llmp-bf16-base", "ModuleOp"> {
  let summary = "Store the frozen linear weights of a LoRA module in bf16 (precision: bf16)";
  let description = [{
    After `llmp-apply-lora`, for a LoRA stage with `precision: bf16`: every frozen parameter
    argument that is 2-D fp32 and used only as the rhs of `llmp.matmul` (lhs not transposed)
    becomes a bf16 tensor of the same shape; its matmuls read it as it is (`llmp.matmul`
    takes a bf16 rhs; llmp-linalg-to-lrt calls `lrt_matmul_bf16_b`, which rounds only the
    lhs per call). Frozen byte offsets (64-byte aligned, argument order, 2 bytes per bf16
    element) and the module's `llmp.frozen_bytes` are recomputed; other frozen parameters
    (embeddings, norms, a tied head) stay fp32.

    Before / after (4 x 6 weight: 96 bytes -> 48):
    ```mlir
    func.func @loss(%w: tensor<4x6xf32> {llmp.byte_offset = 0 : i64, llmp.frozen, llmp.param = "wq"}, ...
      %y = llmp.matmul %x, %w : (tensor<3x4xf32>, tensor<4x6xf32>) -> tensor<3x6xf32>
    func.func @loss(%w: tensor<4x6xbf16> {llmp.byte_offset = 0 : i64, llmp.frozen, llmp.param = "wq"}, ...
      %y = llmp.matmul %x, %w : (tensor<3x4xf32>, tensor<4x6xbf16>) -> tensor<3x6xf32>
    ```
  }];
  let dependentDialects = ["::mlir::llmp::LLMPDialect"];
}

def LLMPStepHeapPeak : Pass<"llmp-step-heap-peak", "ModuleOp"> {
  let summary = "Compute each function's peak of live heap bytes from bufferized IR";
  let description = [{
    After `buffer-deallocation-pipeline`: walks every public function in program order,
    adding each memref.alloc's bytes (rounded as the step heap, kernels/cpu/Alloc.h, rounds
    them) and subtracting them at its memref.dealloc; a loop body counts once, scf.if its
    larger branch, a call its callee's peak. The module gets `llmp.step_heap_peak`, the
    peak per function (see StepHeapPeak.h). The IR is otherwise unchanged.

    ```mlir
    func.func @f() {
      %a = memref.alloc() : memref<100xf32>   // 448 bytes (400 rounded up to 64)
      %b = memref.alloc() : memref<16xf32>    //  64 bytes: 512 live
      memref.dealloc %a : memref<100xf32>
      memref.dealloc %b : memref<16xf32>
      return
    }
    // module attributes {llmp.step_heap_peak = {f = 512 : i64}}
    ```
  }];
  let options = [
    Option<"rows", "rows", "int64_t", "1", "the size of a dynamic dimension (the micro-batch)">,
  ];
  let dependentDialects = ["::mlir::memref::MemRefDialect"];
}

def LLMPRecompute : Pass<"llmp-recompute", "ModuleOp"> {
  let summary = "Activation recomputation: a layer's forward cloned before its backward";
  let description = [{
    Activation checkpointing (Chen et al. 2016, "Training Deep Nets with Sublinear Memory
    Cost"; PyTorch `torch.utils.checkpoint`) on the `_grad` functions of llmp-autodiff, for
    a module with `llmp.recompute = "layers"` or `"attention"` (`recompute:` of the stage;
    the pass does nothing without it). The frontend tags the ops of each iteration of a
    model's `for b in layers` with `llmp.layer = i`; a layer is the run of forward ops
    (before the op marked `llmp.seed`) from its first to its last tagged op, so ops that
    later rewrites insert in between (LoRA adapters, NF4 products) belong to it. The
    recomputed segment is the whole layer (`layers`) or its ops up to and including its
    first `llmp.attention` and the reshapes of its output (`attention`: the attention norm,
    the Q/K/V products, RoPE, attention and its output, the output projection's operand). For each segment:
      1. Its saved values: the results of its ops that no forward op outside the layer
         uses (the layer's output, the next layer's input, stays: it is the checkpoint).
      2. The first backward op that uses a saved value; if none, nothing to do.
      3. Just before it, the segment's non-constant ops are cloned in order (marked
         `llmp.recompute = i`); operands defined outside the segment by non-constant ops
         (the layer's input) are read through `bufferization.alloc_tensor() copy(...)`, an
         op with memory effects, so that no later `cse` merges the clones back into the
         originals once the marks are gone.
      4. Every backward use of a saved value after that point reads the clone instead, so
         the originals die at the end of the forward (llmp-dealloc-at-last-use frees them).
    The clones compute the same values as the originals (dropout masks are a function of
    the seed, the key and the element), so the gradients are unchanged bit for bit.

    Before (`layers`; layer 1 of two, whose input %x1 is layer 0's output):
    ```mlir
    %a1 = llmp.matmul %x1, %w1 {llmp.layer = 1 : i64} : ...
    %h1 = llmp.silu %a1 {llmp.layer = 1 : i64} : ...
    %x2 = llmp.add %x1, %h1 {llmp.layer = 1 : i64} : ...
    ...
    %seed = arith.constant {llmp.seed} dense<1.0> : tensor<f32>
    ...
    %d = llmp.silu_grad %a1, %dy : ...
    ```
    After (the backward of layer 1 reads the recomputed %r1; %a1 dies after the forward):
    ```mlir
    %c1 = bufferization.alloc_tensor() copy(%x1) : tensor<4x4xf32>
    %r1 = llmp.matmul %c1, %w1 {llmp.layer = 1 : i64, llmp.recompute = 1 : i64} : ...
    ...
    %d = llmp.silu_grad %r1, %dy : ...
    ```
  }];
  let dependentDialects = ["::mlir::bufferization::BufferizationDialect"];
}

def LLMPDeallocAtLastUse : Pass<"llmp-dealloc-at-last-use", "ModuleOp"> {
  let summary = "Move each buffer's memref.dealloc to just after its last use";
  let description = [{
    After `buffer-deallocation-pipeline`, which frees a function's buffers at the end of
    the block that owns them (ownership-based deallocation): every `memref.dealloc` in a
    function's entry block of a `memref.alloc` of the same block moves up to just after
    the last op of that block that uses the buffer or a view of it (view-like ops, casts,
    `memref.extract_strided_metadata`, followed transitively; a use inside a region counts
    at its ancestor op in the block). A buffer with a use that may alias it otherwise (an
    op with memref results that is no view, a call, a return) keeps its dealloc. So a
    straight-line step frees each temporary as soon as it is dead: the step heap holds
    only what is live (the forward's activations until their backward use; with
    `recompute:`, only the layers' inputs, llmp-recompute).

    ```mlir
    %a = memref.alloc() : memref<4xf32>
    linalg.fill ins(%c : f32) outs(%a : memref<4xf32>)
    linalg.copy ins(%a : memref<4xf32>) outs(%out : memref<4xf32>)
    %b = memref.alloc() : memref<8xf32>   // with %a still live before
    ...
    memref.dealloc %a : memref<4xf32>
    // after: memref.dealloc %a right after the linalg.copy, before %b's alloc
    ```
  }];
  let dependentDialects = ["::mlir::memref::MemRefDialect"];
}

def LLMPStaticArena : Pass<"llmp-static-arena", "ModuleOp"> {
  let summary = "Place each step function's temporaries in one static arena, reused by liveness";
  let description = [{
    After `llmp-dealloc-at-last-use`, before `llmp-step-heap-peak`: in every public
    function, each `memref.alloc` of the entry block with a static shape and the identity
    layout whose `memref.dealloc` is in the entry block too (and which no call, return or
    aliasing op sees) lives from its alloc to its dealloc. The buffers get offsets in one
    arena by the greedy-by-size offline planner (TFLite's arena planner; Pisarchyk & Lee
    2020, "Efficient Memory Management for Deep Neural Net Inference"): largest first,
    each at the lowest 64-byte aligned offset that overlaps no placed buffer whose lifetime
    meets its own. The arena is one `memref.alloc {alignment = 64, llmp.arena}` of i8 at
    the start of the function, freed before its return; each planned alloc becomes a
    `memref.view` of it at the alloc's place and its dealloc goes. The module gets
    `llmp.step_arena_bytes`, `llmp.step_arena_buffers` and `llmp.step_arena_live_peak`
    (function name -> arena size, buffers placed, their peak of live bytes; see
    StaticArena.h). Other allocations (dynamic shapes, returned, in loops) stay on the heap.

    ```mlir
    %a = memref.alloc() : memref<256xf32>   // 1024 bytes, dead before %c
    ...
    memref.dealloc %a : memref<256xf32>
    %c = memref.alloc() : memref<256xf32>
    // after:
    %arena = memref.alloc() {alignment = 64 : i64, llmp.arena} : memref<1024xi8>
    %a = memref.view %arena[%c0][] : memref<1024xi8> to memref<256xf32>
    %c = memref.view %arena[%c0][] : memref<1024xi8> to memref<256xf32>
    ```
  }];
  let dependentDialects = ["::mlir::memref::MemRefDialect", "::mlir::arith::ArithDialect"];
}

#endif
