/* A stand-in for the TensorRT shim: implements pe_trt.h with a trivial computation so the Rust
 * binding (src/engine/tensorrt/shim.rs) can be tested where TensorRT cannot exist. It tests the
 * binding, not TensorRT. Built by tests/tensorrt.rs with the cc crate.
 *
 * "Plans" are text: "PE-TRT-STANDIN 1\n" then one line per tensor, "in NAME d0,d1,..." or
 * "out NAME d0,d1,..." (a dim of -1 is dynamic). Building from ONNX writes the plan description
 * set with pe_trt_standin_set_plan() (test-only), and refuses INT8 for a model without
 * QuantizeLinear nodes, as the real shim does (explicit quantization only). Test-only knobs also
 * make CUDA unusable (pe_trt_standin_set_cuda("35 message")) or the library runtime-only
 * (pe_trt_standin_set_builder("0")); the real shim's answers then are what tests/tensorrt_real.rs
 * checks against NVIDIA's lean runtime.
 * Inference: output number k (plan order), element i = sum(inputs) + 1000*(k+1) + i. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../src/engine/tensorrt/pe_trt.h"

#define MAGIC "PE-TRT-STANDIN 1\n"
#define MAXT 8

static __thread char last_error[512];
static char plan_desc[1024] = "in input 1,1,4,4\nout probs 1,2\n";
static char version[64] = "0.0.0-standin";
static int builds = 0;
static char library[512] = "";
static int cuda_code = 0; /* 0: a device; else the cudaError_t to report */
static char cuda_message[256] = "";
static int has_builder = 1;

static int fail(int code, const char *msg) {
  snprintf(last_error, sizeof last_error, "%s", msg);
  return code;
}

struct tensor { char name[64]; int is_input; int rank; int64_t dims[PE_TRT_MAX_DIMS]; float *host; size_t count; };
struct pe_trt_engine { int n; struct tensor t[MAXT]; };

void pe_trt_standin_set_plan(const char *d) { snprintf(plan_desc, sizeof plan_desc, "%s", d); }
void pe_trt_standin_set_version(const char *v) { snprintf(version, sizeof version, "%s", v); }
int pe_trt_standin_builds(void) { return builds; }
void pe_trt_standin_set_cuda(const char *v) {
  cuda_code = 0;
  cuda_message[0] = 0;
  if (v && *v && sscanf(v, "%d %255[^\n]", &cuda_code, cuda_message) < 1) cuda_code = 0;
}
void pe_trt_standin_set_builder(const char *v) { has_builder = v && *v == '1'; }

int pe_trt_abi_version(void) { return PE_TRT_ABI_VERSION; }
int pe_trt_open(const char *lib) {
  snprintf(library, sizeof library, "%s", lib && *lib ? lib : "libnvinfer_standin.so");
  return PE_TRT_OK;
}
const char *pe_trt_version(void) { return version; }
const char *pe_trt_header_version(void) { return "0.0.0.0-standin"; }
const char *pe_trt_library(void) { return library; }
int pe_trt_has_builder(void) { return has_builder; }
int pe_trt_cuda_check(int *cuda_error) {
  if (cuda_error) *cuda_error = cuda_code;
  return cuda_code ? fail(PE_TRT_E_CUDA, cuda_message) : PE_TRT_OK;
}
const char *pe_trt_gpu_name(void) { return cuda_code ? "" : "stand-in (no GPU)"; }
const char *pe_trt_last_error(void) { return last_error; }

static int contains(const unsigned char *hay, size_t n, const char *needle) {
  size_t m = strlen(needle);
  for (size_t i = 0; i + m <= n; i++)
    if (memcmp(hay + i, needle, m) == 0) return 1;
  return 0;
}

int pe_trt_build(const void *onnx, size_t onnx_len, int precision, const char *timing_cache, void **plan,
                 size_t *plan_len) {
  if (!onnx || !plan || !plan_len) return fail(PE_TRT_E_ARGUMENT, "null argument to pe_trt_build");
  if (!has_builder) return fail(PE_TRT_E_NO_BUILDER, "stand-in: runtime only; building needs the full TensorRT builder");
  if (cuda_code) return fail(PE_TRT_E_CUDA, cuda_message);
  if (precision == PE_TRT_INT8_QDQ && !contains(onnx, onnx_len, "QuantizeLinear"))
    return fail(PE_TRT_E_UNSUPPORTED, "INT8 asked for a model without Q/DQ nodes; implicit INT8 calibration is not used");
  if (timing_cache && *timing_cache) {
    FILE *f = fopen(timing_cache, "ab");
    if (!f) return fail(PE_TRT_E_BUILD, "cannot write the timing cache");
    fputs("stand-in timing cache entry\n", f);
    fclose(f);
  }
  size_t n = strlen(MAGIC) + strlen(plan_desc);
  char *p = malloc(n + 1);
  if (!p) return fail(PE_TRT_E_BUILD, "out of memory");
  snprintf(p, n + 1, "%s%s", MAGIC, plan_desc);
  *plan = p;
  *plan_len = n;
  builds++;
  return PE_TRT_OK;
}

void pe_trt_free(void *buffer) { free(buffer); }

int pe_trt_load(const void *plan, size_t plan_len, pe_trt_engine **out) {
  if (!plan || !out) return fail(PE_TRT_E_ARGUMENT, "null argument to pe_trt_load");
  if (cuda_code) return fail(PE_TRT_E_CUDA, cuda_message);
  size_t m = strlen(MAGIC);
  if (plan_len < m || memcmp(plan, MAGIC, m) != 0)
    return fail(PE_TRT_E_PLAN, "cannot deserialize: not a plan of this stand-in version");
  char *text = calloc(1, plan_len + 1);
  struct pe_trt_engine *e = calloc(1, sizeof *e);
  if (!text || !e) { free(text); free(e); return fail(PE_TRT_E_CUDA, "out of memory"); }
  memcpy(text, (const char *)plan + m, plan_len - m);
  char *lines = NULL;
  for (char *line = strtok_r(text, "\n", &lines); line && e->n < MAXT; line = strtok_r(NULL, "\n", &lines)) {
    struct tensor *t = &e->t[e->n];
    char kind[8], dims[256];
    if (sscanf(line, "%7s %63s %255s", kind, t->name, dims) != 3) continue;
    t->is_input = strcmp(kind, "in") == 0;
    char *s = dims, *tok, *rest = NULL;
    t->rank = 0;
    for (tok = strtok_r(s, ",", &rest); tok && t->rank < PE_TRT_MAX_DIMS; tok = strtok_r(NULL, ",", &rest))
      t->dims[t->rank++] = atoll(tok);
    e->n++;
  }
  free(text);
  *out = e;
  return PE_TRT_OK;
}

void pe_trt_destroy(pe_trt_engine *e) { free(e); }

int pe_trt_num_tensors(const pe_trt_engine *e) { return e ? e->n : fail(PE_TRT_E_ARGUMENT, "null engine"); }
const char *pe_trt_tensor_name(const pe_trt_engine *e, int i) { return (e && i >= 0 && i < e->n) ? e->t[i].name : NULL; }
int pe_trt_tensor_is_input(const pe_trt_engine *e, int i) {
  if (!e || i < 0 || i >= e->n) return fail(PE_TRT_E_ARGUMENT, "tensor index out of range");
  return e->t[i].is_input;
}
int pe_trt_tensor_shape(const pe_trt_engine *e, int i, int64_t *dims, int max_dims) {
  if (!e || i < 0 || i >= e->n || !dims) return fail(PE_TRT_E_ARGUMENT, "tensor index out of range");
  for (int k = 0; k < e->t[i].rank && k < max_dims; k++) dims[k] = e->t[i].dims[k];
  return e->t[i].rank;
}

static size_t count_of(const struct tensor *t) {
  size_t c = 1;
  for (int k = 0; k < t->rank; k++) c *= (size_t)(t->dims[k] < 0 ? 0 : t->dims[k]);
  return c;
}

int pe_trt_set_host_buffer(pe_trt_engine *e, const char *name, float *host, size_t count) {
  if (!e || !name || !host) return fail(PE_TRT_E_ARGUMENT, "null argument to pe_trt_set_host_buffer");
  for (int i = 0; i < e->n; i++) {
    if (strcmp(e->t[i].name, name) == 0) {
      if (count != count_of(&e->t[i])) return fail(PE_TRT_E_ARGUMENT, "buffer size does not match the tensor");
      e->t[i].host = host;
      e->t[i].count = count;
      return PE_TRT_OK;
    }
  }
  return fail(PE_TRT_E_ARGUMENT, "no tensor of that name");
}

int pe_trt_infer(pe_trt_engine *e) {
  if (!e) return fail(PE_TRT_E_ARGUMENT, "null engine");
  double sum = 0;
  for (int i = 0; i < e->n; i++) {
    if (!e->t[i].host) return fail(PE_TRT_E_INFER, "a tensor has no bound buffer");
    if (e->t[i].is_input)
      for (size_t j = 0; j < e->t[i].count; j++) sum += e->t[i].host[j];
  }
  int k = 0;
  for (int i = 0; i < e->n; i++) {
    if (e->t[i].is_input) continue;
    for (size_t j = 0; j < e->t[i].count; j++) e->t[i].host[j] = (float)(sum + 1000.0 * (k + 1) + (double)j);
    k++;
  }
  return PE_TRT_OK;
}
