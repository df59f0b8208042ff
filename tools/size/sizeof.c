/* sizeof/_Alignof of the public types for a target, without running anything: each object
 * below is as large as the figure it names, and tools/measure/measure.py reads the sizes
 * from the object file's symbol table (compile only, with the target's C compiler). */
#include "usmp.h"

#define MEASURE(name, n) const unsigned char usmp_sizeof_##name[n] = {0}

MEASURE(usmp_t, sizeof(usmp_t));
MEASURE(usmp_t_align, _Alignof(usmp_t));
MEASURE(usmp_transport_t, sizeof(usmp_transport_t));
MEASURE(usmp_stats_t, sizeof(usmp_stats_t));
