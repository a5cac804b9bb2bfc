/* pe_trt.h: the C ABI between pe-sentinel and its TensorRT shim (libpe_trt.so).
 *
 * The shim (board/jetson/shim/pe_trt.cpp) implements it against TensorRT 8.5 (JetPack 5), 10.x
 * (JetPack 6) or 11.x (JetPack 7); the tests' stand-in (tests/tensorrt/stand_in.c) implements it
 * with a trivial computation so the Rust binding can be tested without TensorRT. pe-sentinel loads
 * the library at run time (cargo feature `tensorrt`), so nothing here is needed to build the daemon.
 *
 * Order of calls: pe_trt_open() loads the TensorRT library (no CUDA call); pe_trt_cuda_check()
 * asks CUDA for a usable device; only then pe_trt_build() / pe_trt_load(), which repeat both
 * checks themselves and create no TensorRT object when either fails.
 *
 * Conventions: functions returning int return PE_TRT_OK (0) or a negative PE_TRT_E_* code, and
 * then pe_trt_last_error() (thread-local, valid until the next call on this thread) says why.
 * Strings returned are owned by the library. All tensors are float32, host memory, row-major.
 */
#ifndef PE_TRT_H
#define PE_TRT_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

#define PE_TRT_ABI_VERSION 2
#define PE_TRT_MAX_DIMS 8

enum {
  PE_TRT_OK = 0,
  PE_TRT_E_ARGUMENT = -1,      /* bad argument (null pointer, unknown tensor name, wrong size) */
  PE_TRT_E_PLAN = -2,          /* plan cannot be deserialized (other TensorRT version or GPU): rebuild it */
  PE_TRT_E_BUILD = -3,         /* building an engine from ONNX failed (parser or builder error) */
  PE_TRT_E_UNSUPPORTED = -4,   /* e.g. INT8 asked for a model without Q/DQ nodes (implicit INT8 is not used) */
  PE_TRT_E_CUDA = -5,          /* CUDA runtime error (allocation, copy, stream) */
  PE_TRT_E_INFER = -6,         /* enqueue/execution failed */
  PE_TRT_E_NO_BUILDER = -7,    /* the TensorRT library loaded is runtime-only (lean): building needs the full TensorRT */
  PE_TRT_E_LIBRARY = -8        /* no TensorRT library could be loaded (or pe_trt_open was not called) */
};

enum { PE_TRT_FP32 = 0, PE_TRT_FP16 = 1, PE_TRT_INT8_QDQ = 2 };

typedef struct pe_trt_engine pe_trt_engine;

int pe_trt_abi_version(void);          /* PE_TRT_ABI_VERSION of the library */
const char *pe_trt_last_error(void);

/* Loads the TensorRT library: `library` (a path or a file name for the system loader), or when
 * NULL or empty libnvinfer.so.<major>, then libnvinfer_lean.so.<major> (<major> of the headers
 * the shim was built with). The ONNX parser (libnvonnxparser.so.<major>) is loaded beside a full
 * library. Calls no CUDA function. Later calls return the first call's result. */
int pe_trt_open(const char *library);
const char *pe_trt_version(void);        /* the loaded library's version (getInferLibVersion), e.g. "10.3.0"; "" before pe_trt_open */
const char *pe_trt_header_version(void); /* the TensorRT headers the shim was compiled with, e.g. "11.1.0.106" */
const char *pe_trt_library(void);        /* path of the TensorRT library loaded; "" before pe_trt_open */
int pe_trt_has_builder(void);            /* 1: full TensorRT with builder and ONNX parser; 0: runtime only (lean) */

/* Asks CUDA for a usable device (device count, then a first call on device 0) before any TensorRT
 * object exists. PE_TRT_OK, or PE_TRT_E_CUDA with *cuda_error (may be NULL) set to CUDA's own
 * error code and pe_trt_last_error() holding CUDA's name and message for it. Result cached. */
int pe_trt_cuda_check(int *cuda_error);
const char *pe_trt_gpu_name(void);       /* e.g. "Orin (sm_87)"; "" unless pe_trt_cuda_check succeeded */

/* Builds a serialized plan from ONNX bytes. precision: PE_TRT_*; PE_TRT_INT8_QDQ needs explicit
 * Q/DQ quantization in the model. PE_TRT_FP16: a builder flag on TensorRT 8.x; from 10.0 networks
 * are built strongly typed, so FP16 must come from the model's own float16 tensors (an FP16
 * export, float32 I/O with casts) and a model without any is refused (PE_TRT_E_UNSUPPORTED).
 * timing_cache: file read before and written after the build (may be NULL). On success *plan and *plan_len hold a buffer to release with pe_trt_free(). */
int pe_trt_build(const void *onnx, size_t onnx_len, int precision, const char *timing_cache,
                 void **plan, size_t *plan_len);
void pe_trt_free(void *buffer);

/* Deserializes a plan and prepares one execution context with its device buffers. */
int pe_trt_load(const void *plan, size_t plan_len, pe_trt_engine **out);
void pe_trt_destroy(pe_trt_engine *e);

int pe_trt_num_tensors(const pe_trt_engine *e);
const char *pe_trt_tensor_name(const pe_trt_engine *e, int index);
int pe_trt_tensor_is_input(const pe_trt_engine *e, int index);
/* Writes up to max_dims dims; returns the rank (or a negative code). */
int pe_trt_tensor_shape(const pe_trt_engine *e, int index, int64_t *dims, int max_dims);

/* Binds host memory to a tensor by name; count must equal the tensor's element count. */
int pe_trt_set_host_buffer(pe_trt_engine *e, const char *name, float *host, size_t count);
/* Copies bound inputs to the device, enqueues, copies outputs back, synchronizes. */
int pe_trt_infer(pe_trt_engine *e);

#ifdef __cplusplus
}
#endif
#endif
