// OpenBLAS' CBLAS interface and its thread controls (Debian: libopenblas-dev).
// cblas.h from OpenBLAS declares openblas_set_num_threads, openblas_get_corename and friends.
#include <cblas.h>
