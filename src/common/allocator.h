// Allocator tuning for the long-running server (glibc malloc; a no-op elsewhere).
//
// By default glibc gives every thread its own arena, and grows such an arena with one
// mprotect(2) per 4 KiB page it needs. A loop thread whose working set grows (transactions kept
// for Timer J/H/K/D, new bindings) then pays a system call per page: measured at ~3 mprotect
// calls per proxied call at 500 calls/s. tuneAllocatorForServer() puts every thread on the main
// arena, which grows with brk(2) in steps of M_TOP_PAD (untouched pages are not resident), and
// fixes the trim and mmap thresholds so that memory is not handed back and re-requested at
// every swing of the load. Small allocations stay in each thread's lock-free tcache.
#pragma once

namespace sipwake {

// Process-wide: one arena, top pad 8 MiB, trim threshold 64 MiB, mmap threshold 32 MiB (glibc's
// maximum). Call once at start-up, before other threads allocate. Returns false if the
// allocator refused a setting (or is not glibc).
bool tuneAllocatorForServer();

// Hands free heap pages back to the kernel (glibc malloc_trim), e.g. after a burst of
// connections is gone: the trim threshold above keeps them otherwise. Costs a walk of the free
// lists: call it after bursts, not per operation.
void releaseFreeMemory();

}  // namespace sipwake
