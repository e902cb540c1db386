#include "common/allocator.h"

#include <cstdlib>  // defines __GLIBC__ when the C library is glibc

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace sipwake {

bool tuneAllocatorForServer() {
#if defined(__GLIBC__)
  bool ok = mallopt(M_ARENA_MAX, 1) == 1;
  ok = mallopt(M_TOP_PAD, 8 << 20) == 1 && ok;
  // Setting either threshold also stops glibc from moving them dynamically.
  ok = mallopt(M_TRIM_THRESHOLD, 64 << 20) == 1 && ok;
  ok = mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && ok;
  return ok;
#else
  return false;
#endif
}

void releaseFreeMemory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // namespace sipwake
