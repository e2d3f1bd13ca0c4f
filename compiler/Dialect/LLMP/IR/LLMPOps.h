// SPDX-License-Identifier: Apache-2.0
/// The llmp dialect, its ops and the DifferentiableOpInterface, as C++ classes generated
/// from LLMPDialect.td, LLMPInterfaces.td and LLMPOps.td.
#pragma once

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "compiler/Dialect/LLMP/IR/LLMPOpsDialect.h.inc"
#include "compiler/Dialect/LLMP/IR/LLMPInterfaces.h.inc"

#define GET_OP_CLASSES
#include "compiler/Dialect/LLMP/IR/LLMPOps.h.inc"
