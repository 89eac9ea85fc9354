#include <stdint.h>
int32_t wcr_fx_add(int32_t a, int32_t b) { return a + b; }
