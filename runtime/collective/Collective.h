// SPDX-License-Identifier: Apache-2.0
/// Collective operations between the processes of a data-parallel run: one interface, with
/// a single-process implementation (every collective is the identity) and an MPI one
/// (Open MPI, `mpirun -np N llmpc run ...`). A GPU run will add an NCCL implementation
/// behind the same interface. The trainer sees only `Collective`; `createCollective()`
/// picks the implementation from how the process was launched.
///
/// All operations are blocking and collective: every rank must call them in the same order
/// with the same counts. They return `lrt::Status` (code Internal, with the MPI error text
/// and the numbers involved) and never exit or abort the process.
#pragma once

#include "runtime/Status.h"

#include <cstdint>
#include <memory>
#include <string>

namespace lrt {

/// The processes of one run: ranks 0 .. size()-1. Rank 0 is the one that writes files.
class Collective {
public:
  virtual ~Collective() = default;
  /// This process's rank in [0, size()).
  virtual int rank() const = 0;
  /// Number of processes (the world size), >= 1.
  virtual int size() const = 0;
  /// "single" or "mpi".
  virtual const char *name() const = 0;

  /// In place: `data[i]` becomes the sum over ranks of every rank's `data[i]`, on every
  /// rank (MPI_Allreduce with MPI_IN_PLACE and MPI_SUM). `data`: fp32[n], n >= 0. The MPI
  /// standard advises, and Open MPI does, that every rank gets the same bits; the trainer
  /// checks that the parameters stay identical. Errors: InvalidArgument for n < 0;
  /// Internal if the transport fails.
  virtual Status allreduceSum(float *data, int64_t n) = 0;
  /// As above for fp64[n] (losses and other per-step scalars).
  virtual Status allreduceSum(double *data, int64_t n) = 0;
  /// As above for int64[n] (exact: token counts, flags).
  virtual Status allreduceSum(int64_t *data, int64_t n) = 0;
  /// Copies `bytes` bytes at `data` on rank `root` into `data` on every other rank.
  /// Errors: InvalidArgument for a negative size or a root outside [0, size()); Internal
  /// if the transport fails.
  virtual Status broadcast(void *data, int64_t bytes, int root) = 0;
  /// Returns once every rank has called it. Errors: Internal if the transport fails.
  virtual Status barrier() = 0;
  /// Ends the collective layer cleanly (MPI_Finalize). Call it once, on every rank, only
  /// after a run that succeeded everywhere: a rank that fails returns without it, and the
  /// launcher (mpirun) then ends the whole job instead of leaving the other ranks waiting
  /// in a collective. Later operations fail with Internal. Errors: Internal.
  virtual Status finalize() = 0;
};

/// The single-process implementation: rank 0 of 1; reductions and broadcasts leave the
/// data as it is.
std::unique_ptr<Collective> makeSingleProcessCollective();

/// The world size the launcher announces in the environment: `OMPI_COMM_WORLD_SIZE`
/// (Open MPI's mpirun), else `PMI_SIZE` (MPICH, Slurm's srun), else `PMIX_SIZE`; 0 when
/// none is set (not launched by an MPI launcher). Errors: InvalidArgument when the
/// variable is not a positive integer.
Expected<int> launcherWorldSize();

/// The collective layer for this process: MPI (MPI_Init, then MPI_COMM_WORLD with errors
/// returned rather than fatal) when launcherWorldSize() > 0, otherwise the single-process
/// one. Call it once per process (MPI can be initialised only once).
/// Errors: InvalidArgument when an MPI launcher started the process but llmp was built
/// without MPI (the message says which packages to install); Internal when MPI_Init fails
/// or MPI's world size differs from the launcher's.
Expected<std::unique_ptr<Collective>> createCollective();

/// True when this build has the MPI implementation (found by CMake's FindMPI).
bool haveMpi();

} // namespace lrt
