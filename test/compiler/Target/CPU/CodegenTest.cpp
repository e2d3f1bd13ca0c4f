// SPDX-License-Identifier: Apache-2.0
/// The code generation steps of compiler/Target/CPU/Codegen.h on a step with one OpenMP
/// region: prepareCodegenUnits moves the region into a function of its own and clones the
/// constants it uses (sizes, strides, loop bounds) into that function instead of passing
/// them as arguments, and LLVM's -O3 then vectorises the region's loop. Passed as
/// arguments, the constants were unknown inside the region and LLVM vectorised none of the
/// generated loops (5137afd); the test fails if either comes back.
#include "compiler/Pipelines/Pipelines.h"
#include "compiler/Target/CPU/Codegen.h"
#include "test/compiler/CompiledTestUtil.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/OpenMP/OpenMPDialect.h"

#include "llvm/IR/DerivedTypes.h"
#include "llvm/IR/Instructions.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Target/TargetMachine.h"

#include <gtest/gtest.h>

#include <mutex>

using namespace mlir;

namespace {

/// y = x * x + x over 64 x 1024 elements, at the linalg phase: large enough for one OpenMP parallel loop
/// (test/compiler/Pipelines/cpu-loops.mlir), with a contiguous inner loop of 1024.
constexpr const char *kStep = R"(
func.func @step(%x: tensor<64x1024xf32>) -> tensor<64x1024xf32> {
  %e = tensor.empty() : tensor<64x1024xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>],
                       iterator_types = ["parallel", "parallel"]}
      ins(%x : tensor<64x1024xf32>) outs(%e : tensor<64x1024xf32>) {
  ^bb0(%a: f32, %o: f32):
    %s = arith.mulf %a, %a : f32
    %r = arith.addf %s, %a : f32
    linalg.yield %r : f32
  } -> tensor<64x1024xf32>
  return %y : tensor<64x1024xf32>
}
)";

/// Whether `v` is produced by a constant (llvm.mlir.constant, llvm.mlir.zero, ...).
bool isConstant(Value v) {
  Operation *def = v.getDefiningOp();
  return def && def->hasTrait<OpTrait::ConstantLike>();
}

TEST(Codegen, OutlinedRegionsOwnTheirConstantsAndVectorise) {
  llmp_test::Compiled c;
  OwningOpRef<ModuleOp> module = llmp_test::parseModule(c, kStep);
  ASSERT_TRUE(module);
  ASSERT_TRUE(succeeded(llmp::lowerToPhase(*module, llmp::Phase::LLVM, llmp::Phase::Linalg)));
  ModuleOp m = *module;
  std::vector<llmp::CodegenUnit> units = llmp::prepareCodegenUnits({m}, /*split=*/false);
  ASSERT_EQ(units.size(), 1u);

  // The region now lives in @step.parallel.0, called from @step with only the values that
  // are not constants (here the memref descriptors' pointers).
  auto outlined = m.lookupSymbol<LLVM::LLVMFuncOp>("step.parallel.0");
  ASSERT_TRUE(outlined) << "no outlined parallel region";
  bool leftInStep = m.lookupSymbol<LLVM::LLVMFuncOp>("step")
                        .walk([](omp::ParallelOp) { return WalkResult::interrupt(); })
                        .wasInterrupted();
  EXPECT_FALSE(leftInStep) << "an omp.parallel is left in @step";
  int calls = 0;
  m.walk([&](LLVM::CallOp call) {
    if (call.getCallee() != outlined.getSymName())
      return;
    ++calls;
    for (Value arg : call.getArgOperands())
      EXPECT_FALSE(isConstant(arg)) << "a constant is passed to the region as an argument";
  });
  EXPECT_EQ(calls, 1);
  int constantsInside = 0;
  outlined.walk([&](Operation *op) {
    if (op->hasTrait<OpTrait::ConstantLike>())
      ++constantsInside;
  });
  EXPECT_GT(constantsInside, 0) << "the region's constants were not cloned into it";

  // After -O3 the region's body (OpenMPIRBuilder's `..omp_par` function) computes on
  // float vectors: the loop over the 1024 contiguous elements is vectorised.
  auto tm = llmp::createHostTargetMachine();
  ASSERT_TRUE(static_cast<bool>(tm)) << llvm::toString(tm.takeError());
  llvm::LLVMContext context;
  std::mutex translateMutex;
  auto llvmModule = llmp::translateAndOptimize(units[0].op(), context, **tm, translateMutex);
  ASSERT_TRUE(static_cast<bool>(llvmModule)) << llvm::toString(llvmModule.takeError());
  int regions = 0, vectorOps = 0;
  for (llvm::Function &fn : **llvmModule) {
    if (!fn.getName().contains("omp_par"))
      continue;
    ++regions;
    for (llvm::BasicBlock &bb : fn)
      for (llvm::Instruction &inst : bb)
        if (inst.getType()->isVectorTy() && inst.getType()->getScalarType()->isFloatTy())
          ++vectorOps;
  }
  EXPECT_EQ(regions, 1);
  EXPECT_GT(vectorOps, 0) << "the parallel region's loop was not vectorised";
}

} // namespace
