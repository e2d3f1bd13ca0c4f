# SPDX-License-Identifier: Apache-2.0
# Counts, inside func.func @grad_step of an llmp-opt dump (up to @apply_step, which
# follows it), the linalg ops, the loop nests at the top of the function body (4 spaces
# in: scf.parallel loops stay parallel, scf.for run on one thread), the GEMM calls and the
# zero fills that became memsets (llmp-fills-to-memset).
/func\.func @grad_step/ { inside = 1 }
/func\.func @apply_step/ { inside = 0 }
inside && /= linalg\.generic/ { generic++ }
inside && /linalg\.(batch_)?matmul/ { matmul++ }
inside && /^    (%[^=]+= )?scf\.parallel / { parallel++ }
inside && /^    (%[^=]+= )?scf\.for / { sequential++ }
inside && /call @lrt_(batch_)?matmul_f32/ { gemm++ }
inside && /llvm\.intr\.memset/ { memset++ }
END {
  print "linalg.generic " generic + 0 ", linalg matmuls " matmul + 0
  print "loop nests " parallel + sequential ": parallel " parallel + 0 ", sequential " sequential + 0 "; GEMM calls " gemm + 0
  print "memsets " memset + 0
}
