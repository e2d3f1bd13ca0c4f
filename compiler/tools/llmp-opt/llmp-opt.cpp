// SPDX-License-Identifier: Apache-2.0
/// llmp-opt: mlir-opt with the llmp dialect and passes, for lit tests and debugging.
#include "compiler/Pipelines/Pipelines.h"

#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  mlir::llmp::registerLLMPDialects(registry);
  mlir::llmp::registerLLMPPasses();
  return mlir::asMainReturnCode(mlir::MlirOptMain(argc, argv, "llmp optimizer driver\n", registry));
}
