# SPDX-License-Identifier: Apache-2.0
import os
import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "llmp"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".llmp"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.llmp_obj_root, "test")
# Inputs shared by several tests live in Inputs/ folders and are not tests themselves.
config.excludes = ["Inputs", "CMakeLists.txt", "lit.cfg.py"]

llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
config.substitutions.append(("%llmp_src", config.llmp_src_root))
config.substitutions.append(("%stdlib", os.path.join(config.llmp_src_root, "stdlib")))
tools = [ToolSubst("llmpc", unresolved="ignore"), ToolSubst("llmp-opt", unresolved="ignore"),
         ToolSubst("llmp-step-memory", unresolved="ignore")]
llvm_config.add_tool_substitutions(tools, [config.llmp_tools_dir, config.llvm_tools_dir])
