// pe_trt.cpp: the TensorRT shim of pe-sentinel, implementing src/engine/tensorrt/pe_trt.h against
// TensorRT 8.5 (JetPack 5.1), 10.x (JetPack 6.x) or 11.x (JetPack 7, current x86). One source;
// scripts/trt-compile.sh compiles it in CI against the public headers of 8.5, 10.3, 10.16 and 11.1
// with -Wall -Wextra -Werror, and tests/tensorrt_real.rs loads the 11.x build with NVIDIA's real
// lean runtime on a machine without a GPU. It has never run on a GPU: see docs/engines.md.
//
// TensorRT is opened with dlopen (pe_trt_open), not linked: the same shim then works with the full
// library (libnvinfer + libnvonnxparser: build and run) or the lean runtime (libnvinfer_lean: run
// only), reports which one it loaded and its own version (getInferLibVersion), and a missing
// library is an error message instead of a loader failure. CUDA (libcudart) is linked.
//
// CUDA is checked before any TensorRT object exists (pe_trt_cuda_check): the TensorRT 11 runtime
// created on a machine without a usable driver prints a CUDA error and returns a pointer that is
// not null but crashes the next call, so the shim never gets that far without a device.
//
// Versions: tensors by name (getNbIOTensors / getIOTensorName / getTensorIOMode / getTensorShape),
// setTensorAddress and enqueueV3, all present since 8.5; the bindings API (removed in 10) is not
// used. NV_TENSORRT_MAJOR picks the network mode: 8.x is weakly typed with the explicit-batch flag
// and gets FP16/INT8 from builder flags; from 10.0 networks are strongly typed (the only mode in
// 11, where BuilderFlag::kFP16/kINT8 are gone; deprecated in late 10.x), so precision comes from the
// model: INT8 from its Q/DQ nodes, FP16 from its own float16 tensors. The INT8 calibrator classes
// (deprecated in 10.1, gone in 11) are never used.
#include "pe_trt.h"

#include <NvInfer.h>
#include <NvOnnxParser.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <link.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

namespace {

thread_local std::string g_error;

int fail(int code, const std::string &msg) {
  g_error = msg;
  return code;
}

// Every entry point that allocates runs inside this: no C++ exception crosses the C ABI.
template <typename F>
int guarded(int code, F f) noexcept {
  try {
    return f();
  } catch (const std::exception &e) {
    return fail(code, std::string("TensorRT shim: ") + e.what());
  } catch (...) {
    return fail(code, "TensorRT shim: unknown C++ exception");
  }
}

class Logger : public nvinfer1::ILogger {
 public:
  void log(Severity severity, const char *msg) noexcept override {
    if (severity <= Severity::kWARNING) std::fprintf(stderr, "[TensorRT] %s\n", msg);
    if (severity <= Severity::kERROR) {
      try {
        g_error = msg;
      } catch (...) {
      }
    }
  }
};

Logger g_logger;

template <typename T>
struct Destroy {
  void operator()(T *p) const { delete p; }
};
template <typename T>
using Ptr = std::unique_ptr<T, Destroy<T>>;

#define PE_STR2(x) #x
#define PE_STR(x) PE_STR2(x)
const char *const kMajor = PE_STR(NV_TENSORRT_MAJOR);

// The TensorRT library as opened by pe_trt_open: the factory functions the headers' inline
// createInferRuntime / createInferBuilder / createParser would call, found with dlsym.
struct Trt {
  std::mutex lock;
  bool tried = false;
  int code = PE_TRT_E_LIBRARY;
  std::string message = "pe_trt_open was not called";
  std::string path;
  std::string version;
  std::string no_builder;  // why building is impossible; empty for a full library
  void *(*create_runtime)(void *, int32_t) = nullptr;
  void *(*create_builder)(void *, int32_t) = nullptr;
  void *(*create_parser)(void *, void *, int) = nullptr;
};

Trt g_trt;

// The library's own version: getInferLibVersion is MAJOR*1000+MINOR*100+PATCH before 10 and
// MAJOR*10000+MINOR*100+PATCH from 10.0 (10.0.0 = 100000).
std::string decode_version(int32_t v, int *major) {
  int ma, mi, pa;
  if (v >= 100000) {
    ma = v / 10000, mi = (v / 100) % 100, pa = v % 100;
  } else {
    ma = v / 1000, mi = (v / 100) % 10, pa = v % 100;
  }
  *major = ma;
  std::ostringstream s;
  s << ma << "." << mi << "." << pa;
  return s.str();
}

std::string loaded_path(void *handle, const std::string &fallback) {
  struct link_map *lm = nullptr;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &lm) == 0 && lm && lm->l_name && *lm->l_name) return lm->l_name;
  return fallback;
}

std::string dir_of(const std::string &path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash + 1);
}

int open_locked(const char *library) {
  std::vector<std::string> names;
  if (library && *library) {
    names.emplace_back(library);
  } else {
    names.push_back(std::string("libnvinfer.so.") + kMajor);
    names.push_back(std::string("libnvinfer_lean.so.") + kMajor);
  }
  void *handle = nullptr;
  std::string tried;
  for (const auto &n : names) {
    handle = dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle) break;
    const char *why = dlerror();  // names the file already
    tried += (tried.empty() ? "" : "; ") + (why ? std::string(why) : n + ": not found");
  }
  if (!handle)
    return fail(PE_TRT_E_LIBRARY,
                "no TensorRT library could be loaded (" + tried +
                    "); install TensorRT (JetPack: libnvinfer" + kMajor + ") or set [tensorrt] library");
  g_trt.path = loaded_path(handle, names.front());
  auto get_version = reinterpret_cast<int32_t (*)()>(dlsym(handle, "getInferLibVersion"));
  g_trt.create_runtime = reinterpret_cast<void *(*)(void *, int32_t)>(dlsym(handle, "createInferRuntime_INTERNAL"));
  if (!get_version || !g_trt.create_runtime)
    return fail(PE_TRT_E_LIBRARY, g_trt.path + " is not a TensorRT runtime library (no getInferLibVersion / "
                                               "createInferRuntime_INTERNAL); set [tensorrt] library to libnvinfer");
  int major = 0;
  g_trt.version = decode_version(get_version(), &major);
  if (major != NV_TENSORRT_MAJOR)
    return fail(PE_TRT_E_LIBRARY, "TensorRT library " + g_trt.path + " is version " + g_trt.version +
                                      ", the shim was compiled with TensorRT " + kMajor +
                                      ".x headers; rebuild the shim against this TensorRT (board/jetson/shim/build.sh)");
  g_trt.create_builder = reinterpret_cast<void *(*)(void *, int32_t)>(dlsym(handle, "createInferBuilder_INTERNAL"));
  if (!g_trt.create_builder) {
    g_trt.no_builder = "it has no builder (the lean runtime)";
  } else {
    const std::string parser = std::string("libnvonnxparser.so.") + kMajor;
    void *p = dlopen((dir_of(g_trt.path) + parser).c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!p) p = dlopen(parser.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (p) g_trt.create_parser = reinterpret_cast<void *(*)(void *, void *, int)>(dlsym(p, "createNvOnnxParser_INTERNAL"));
    if (!g_trt.create_parser) g_trt.no_builder = "its ONNX parser " + parser + " could not be loaded";
  }
  return PE_TRT_OK;
}

int require_open() {
  std::lock_guard<std::mutex> l(g_trt.lock);
  return g_trt.code == PE_TRT_OK ? PE_TRT_OK : fail(g_trt.code, g_trt.message);
}

// The CUDA check, done once: device count, then a first call on device 0 (creates its context).
struct CudaState {
  std::once_flag once;
  int code = PE_TRT_OK;
  int cuda_error = 0;
  std::string message;
  std::string gpu_name;
};

CudaState g_cuda;

std::string describe(const char *what, cudaError_t e) {
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  std::ostringstream s;
  s << what << ": CUDA error " << static_cast<int>(e) << " " << cudaGetErrorName(e) << ": " << cudaGetErrorString(e)
    << " (CUDA runtime " << runtime / 1000 << "." << (runtime % 1000) / 10 << ", driver ";
  if (driver == 0)
    s << "none installed";
  else
    s << "supports up to " << driver / 1000 << "." << (driver % 1000) / 10;
  s << ")";
  return s.str();
}

void cuda_check_once() {
  auto failed = [](const char *what, cudaError_t e) {
    g_cuda.code = PE_TRT_E_CUDA;
    g_cuda.cuda_error = static_cast<int>(e);
    g_cuda.message = "no usable CUDA device: " + describe(what, e);
  };
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) return failed("cudaGetDeviceCount", e);
  if (n < 1) return failed("cudaGetDeviceCount", cudaErrorNoDevice);
  if ((e = cudaSetDevice(0)) != cudaSuccess) return failed("cudaSetDevice(0)", e);
  if ((e = cudaFree(nullptr)) != cudaSuccess) return failed("the first CUDA call on device 0", e);
  cudaDeviceProp prop{};
  if ((e = cudaGetDeviceProperties(&prop, 0)) != cudaSuccess) return failed("cudaGetDeviceProperties(0)", e);
  std::ostringstream s;
  s << prop.name << " (sm_" << prop.major << prop.minor << ")";
  g_cuda.gpu_name = s.str();
}

int cuda_ok() {
  try {
    std::call_once(g_cuda.once, cuda_check_once);
  } catch (const std::exception &e) {
    return fail(PE_TRT_E_CUDA, std::string("CUDA check: ") + e.what());
  }
  return g_cuda.code == PE_TRT_OK ? PE_TRT_OK : fail(g_cuda.code, g_cuda.message);
}

bool cuda_call(cudaError_t e, const char *what) {
  if (e == cudaSuccess) return true;
  g_error = std::string(what) + ": CUDA error " + std::to_string(static_cast<int>(e)) + " " + cudaGetErrorName(e) +
            ": " + cudaGetErrorString(e);
  return false;
}

struct Tensor {
  std::string name;
  bool is_input = false;
  nvinfer1::Dims dims{};
  size_t count = 0;
  void *device = nullptr;
  float *host = nullptr;
};

size_t count_of(const nvinfer1::Dims &d) {
  size_t c = 1;
  for (int i = 0; i < d.nbDims; i++) c *= d.d[i] < 0 ? 0 : static_cast<size_t>(d.d[i]);
  return c;
}

bool has_layer(nvinfer1::INetworkDefinition &net, nvinfer1::LayerType type) {
  for (int i = 0; i < net.getNbLayers(); i++)
    if (net.getLayer(i)->getType() == type) return true;
  return false;
}

#if NV_TENSORRT_MAJOR >= 10
// Whether any tensor of the parsed network is float16 (the model's own FP16 types).
bool has_half(nvinfer1::INetworkDefinition &net) {
  for (int i = 0; i < net.getNbInputs(); i++)
    if (net.getInput(i)->getType() == nvinfer1::DataType::kHALF) return true;
  for (int i = 0; i < net.getNbLayers(); i++) {
    nvinfer1::ILayer *l = net.getLayer(i);
    for (int j = 0; j < l->getNbOutputs(); j++)
      if (l->getOutput(j)->getType() == nvinfer1::DataType::kHALF) return true;
  }
  return false;
}
#endif

// Network flags and precision settings for this TensorRT version (see the head of the file).
int configure(nvinfer1::INetworkDefinition &net, nvinfer1::IBuilderConfig &config, int precision) {
  if (precision != PE_TRT_FP32 && precision != PE_TRT_FP16 && precision != PE_TRT_INT8_QDQ)
    return fail(PE_TRT_E_ARGUMENT, "unknown precision " + std::to_string(precision));
  if (precision == PE_TRT_INT8_QDQ && !has_layer(net, nvinfer1::LayerType::kQUANTIZE))
    return fail(PE_TRT_E_UNSUPPORTED, "INT8 asked for a model without Q/DQ nodes; only explicit quantization is supported");
#if NV_TENSORRT_MAJOR >= 10
  (void)config;
  if (precision == PE_TRT_FP16 && !has_half(net))
    return fail(PE_TRT_E_UNSUPPORTED,
                std::string("FP16 asked for a model without float16 tensors: TensorRT ") + kMajor +
                    ".x builds strongly typed networks, so FP16 comes from the model's own types; use an FP16 export of "
                    "the model (float32 inputs and outputs, Cast nodes inside) or precision fp32");
#else
  (void)net;
  if (precision == PE_TRT_INT8_QDQ) {
    config.setFlag(nvinfer1::BuilderFlag::kINT8);
    config.setFlag(nvinfer1::BuilderFlag::kFP16);  // layers left unquantized may run in FP16
  } else if (precision == PE_TRT_FP16) {
    config.setFlag(nvinfer1::BuilderFlag::kFP16);
  }
#endif
  return PE_TRT_OK;
}

uint32_t network_flags() {
#if NV_TENSORRT_MAJOR >= 11
  return 0;  // strongly typed and explicit batch are the only modes; both flags are deprecated
#elif NV_TENSORRT_MAJOR == 10
  return 1U << static_cast<uint32_t>(nvinfer1::NetworkDefinitionCreationFlag::kSTRONGLY_TYPED);
#else
  return 1U << static_cast<uint32_t>(nvinfer1::NetworkDefinitionCreationFlag::kEXPLICIT_BATCH);
#endif
}

int build(const void *onnx, size_t onnx_len, int precision, const char *timing_cache, void **plan, size_t *plan_len) {
  if (int c = require_open()) return c;
  if (!g_trt.no_builder.empty())
    return fail(PE_TRT_E_NO_BUILDER, "the TensorRT library " + g_trt.path + " (" + g_trt.version +
                                         ") cannot build engines: " + g_trt.no_builder +
                                         "; building needs the full TensorRT builder (libnvinfer.so." + kMajor +
                                         " and libnvonnxparser.so." + kMajor + ")");
  if (int c = cuda_ok()) return c;
  Ptr<nvinfer1::IBuilder> builder(static_cast<nvinfer1::IBuilder *>(g_trt.create_builder(&g_logger, NV_TENSORRT_VERSION)));
  if (!builder) return fail(PE_TRT_E_BUILD, "createInferBuilder failed: " + g_error);
  Ptr<nvinfer1::INetworkDefinition> network(builder->createNetworkV2(network_flags()));
  if (!network) return fail(PE_TRT_E_BUILD, "createNetworkV2 failed: " + g_error);
  Ptr<nvonnxparser::IParser> parser(
      static_cast<nvonnxparser::IParser *>(g_trt.create_parser(network.get(), &g_logger, NV_ONNX_PARSER_VERSION)));
  if (!parser) return fail(PE_TRT_E_BUILD, "createParser failed: " + g_error);
  if (!parser->parse(onnx, onnx_len)) {
    std::string msg = "ONNX parser:";
    for (int i = 0; i < parser->getNbErrors(); i++) msg += std::string(" ") + parser->getError(i)->desc();
    return fail(PE_TRT_E_BUILD, msg);
  }
  Ptr<nvinfer1::IBuilderConfig> config(builder->createBuilderConfig());
  if (!config) return fail(PE_TRT_E_BUILD, "createBuilderConfig failed: " + g_error);
  config->setMemoryPoolLimit(nvinfer1::MemoryPoolType::kWORKSPACE, size_t(1) << 30);
  if (int c = configure(*network, *config, precision)) return c;
  std::vector<char> cache_bytes;
  if (timing_cache && *timing_cache) {
    std::ifstream in(timing_cache, std::ios::binary);
    if (in) cache_bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  Ptr<nvinfer1::ITimingCache> cache(config->createTimingCache(cache_bytes.data(), cache_bytes.size()));
  if (cache) config->setTimingCache(*cache, false);
  Ptr<nvinfer1::IHostMemory> serialized(builder->buildSerializedNetwork(*network, *config));
  if (!serialized) return fail(PE_TRT_E_BUILD, "buildSerializedNetwork failed: " + g_error);
  if (timing_cache && *timing_cache) {
    const nvinfer1::ITimingCache *used = config->getTimingCache();
    if (used) {
      Ptr<nvinfer1::IHostMemory> out(used->serialize());
      std::ofstream f(timing_cache, std::ios::binary | std::ios::trunc);
      if (out && f) f.write(static_cast<const char *>(out->data()), static_cast<std::streamsize>(out->size()));
    }
  }
  void *buf = std::malloc(serialized->size());
  if (!buf) return fail(PE_TRT_E_BUILD, "out of memory copying the plan");
  std::memcpy(buf, serialized->data(), serialized->size());
  *plan = buf;
  *plan_len = serialized->size();
  return PE_TRT_OK;
}

}  // namespace

struct pe_trt_engine {
  Ptr<nvinfer1::IRuntime> runtime;
  Ptr<nvinfer1::ICudaEngine> engine;
  Ptr<nvinfer1::IExecutionContext> context;
  cudaStream_t stream = nullptr;
  std::vector<Tensor> tensors;
  ~pe_trt_engine() {
    for (auto &t : tensors)
      if (t.device) cudaFree(t.device);
    if (stream) cudaStreamDestroy(stream);
    context.reset();
    engine.reset();
    runtime.reset();
  }
};

namespace {

int load(const void *plan, size_t plan_len, pe_trt_engine **out) {
  if (int c = require_open()) return c;
  if (int c = cuda_ok()) return c;
  auto e = std::make_unique<pe_trt_engine>();
  e->runtime.reset(static_cast<nvinfer1::IRuntime *>(g_trt.create_runtime(&g_logger, NV_TENSORRT_VERSION)));
  if (!e->runtime) return fail(PE_TRT_E_PLAN, "createInferRuntime failed: " + g_error);
  e->engine.reset(e->runtime->deserializeCudaEngine(plan, plan_len));
  if (!e->engine) {
    std::string msg = "cannot deserialize the plan with " + g_trt.path + " (" + g_trt.version + "): " + g_error;
    if (!g_trt.no_builder.empty())
      msg += "; a lean runtime reads only plans built version-compatible by the full TensorRT, which pe-sentinel "
             "does not build (docs/engines.md)";
    return fail(PE_TRT_E_PLAN, msg);
  }
  e->context.reset(e->engine->createExecutionContext());
  if (!e->context) return fail(PE_TRT_E_CUDA, "createExecutionContext failed: " + g_error);
  if (!cuda_call(cudaStreamCreate(&e->stream), "cudaStreamCreate")) return PE_TRT_E_CUDA;
  for (int i = 0; i < e->engine->getNbIOTensors(); i++) {
    Tensor t;
    t.name = e->engine->getIOTensorName(i);
    t.is_input = e->engine->getTensorIOMode(t.name.c_str()) == nvinfer1::TensorIOMode::kINPUT;
    t.dims = e->engine->getTensorShape(t.name.c_str());
    if (e->engine->getTensorDataType(t.name.c_str()) != nvinfer1::DataType::kFLOAT)
      return fail(PE_TRT_E_UNSUPPORTED, "tensor " + t.name + " is not float32; export the model with float32 I/O");
    t.count = count_of(t.dims);
    if (t.count > 0) {
      if (!cuda_call(cudaMalloc(&t.device, t.count * sizeof(float)), "cudaMalloc")) return PE_TRT_E_CUDA;
      if (!e->context->setTensorAddress(t.name.c_str(), t.device))
        return fail(PE_TRT_E_CUDA, "setTensorAddress failed for " + t.name);
    }
    e->tensors.push_back(t);
  }
  *out = e.release();
  return PE_TRT_OK;
}

}  // namespace

extern "C" {

int pe_trt_abi_version(void) { return PE_TRT_ABI_VERSION; }

const char *pe_trt_last_error(void) { return g_error.c_str(); }

int pe_trt_open(const char *library) {
  return guarded(PE_TRT_E_LIBRARY, [&]() -> int {
    std::lock_guard<std::mutex> l(g_trt.lock);
    if (!g_trt.tried) {
      g_trt.tried = true;
      g_trt.code = open_locked(library);
      g_trt.message = g_trt.code == PE_TRT_OK ? std::string() : g_error;
    }
    return g_trt.code == PE_TRT_OK ? PE_TRT_OK : fail(g_trt.code, g_trt.message);
  });
}

const char *pe_trt_version(void) { return require_open() == PE_TRT_OK ? g_trt.version.c_str() : ""; }

const char *pe_trt_header_version(void) {
  return PE_STR(NV_TENSORRT_MAJOR) "." PE_STR(NV_TENSORRT_MINOR) "." PE_STR(NV_TENSORRT_PATCH) "." PE_STR(
      NV_TENSORRT_BUILD);
}

const char *pe_trt_library(void) { return require_open() == PE_TRT_OK ? g_trt.path.c_str() : ""; }

int pe_trt_has_builder(void) { return require_open() == PE_TRT_OK && g_trt.no_builder.empty() ? 1 : 0; }

int pe_trt_cuda_check(int *cuda_error) {
  const int code = cuda_ok();
  if (cuda_error) *cuda_error = g_cuda.cuda_error;
  return code;
}

const char *pe_trt_gpu_name(void) { return cuda_ok() == PE_TRT_OK ? g_cuda.gpu_name.c_str() : ""; }

int pe_trt_build(const void *onnx, size_t onnx_len, int precision, const char *timing_cache, void **plan,
                 size_t *plan_len) {
  if (!onnx || !plan || !plan_len) return fail(PE_TRT_E_ARGUMENT, "null argument to pe_trt_build");
  return guarded(PE_TRT_E_BUILD, [&]() -> int { return build(onnx, onnx_len, precision, timing_cache, plan, plan_len); });
}

void pe_trt_free(void *buffer) { std::free(buffer); }

int pe_trt_load(const void *plan, size_t plan_len, pe_trt_engine **out) {
  if (!plan || !out) return fail(PE_TRT_E_ARGUMENT, "null argument to pe_trt_load");
  return guarded(PE_TRT_E_PLAN, [&]() -> int { return load(plan, plan_len, out); });
}

void pe_trt_destroy(pe_trt_engine *e) { delete e; }

int pe_trt_num_tensors(const pe_trt_engine *e) {
  return e ? static_cast<int>(e->tensors.size()) : fail(PE_TRT_E_ARGUMENT, "null engine");
}

const char *pe_trt_tensor_name(const pe_trt_engine *e, int i) {
  return (e && i >= 0 && i < static_cast<int>(e->tensors.size())) ? e->tensors[i].name.c_str() : nullptr;
}

int pe_trt_tensor_is_input(const pe_trt_engine *e, int i) {
  if (!e || i < 0 || i >= static_cast<int>(e->tensors.size())) return fail(PE_TRT_E_ARGUMENT, "tensor index out of range");
  return e->tensors[i].is_input ? 1 : 0;
}

int pe_trt_tensor_shape(const pe_trt_engine *e, int i, int64_t *dims, int max_dims) {
  if (!e || !dims || i < 0 || i >= static_cast<int>(e->tensors.size()))
    return fail(PE_TRT_E_ARGUMENT, "tensor index out of range");
  const nvinfer1::Dims &d = e->tensors[i].dims;
  for (int k = 0; k < d.nbDims && k < max_dims; k++) dims[k] = d.d[k];
  return d.nbDims;
}

int pe_trt_set_host_buffer(pe_trt_engine *e, const char *name, float *host, size_t count) {
  if (!e || !name || !host) return fail(PE_TRT_E_ARGUMENT, "null argument to pe_trt_set_host_buffer");
  return guarded(PE_TRT_E_ARGUMENT, [&]() -> int {
    for (auto &t : e->tensors) {
      if (t.name == name) {
        if (count != t.count) return fail(PE_TRT_E_ARGUMENT, "buffer size does not match tensor " + t.name);
        t.host = host;
        return PE_TRT_OK;
      }
    }
    return fail(PE_TRT_E_ARGUMENT, std::string("no tensor named ") + name);
  });
}

int pe_trt_infer(pe_trt_engine *e) {
  if (!e) return fail(PE_TRT_E_ARGUMENT, "null engine");
  return guarded(PE_TRT_E_INFER, [&]() -> int {
    for (auto &t : e->tensors) {
      if (!t.host) return fail(PE_TRT_E_INFER, "tensor " + t.name + " has no host buffer bound");
      if (t.is_input &&
          !cuda_call(cudaMemcpyAsync(t.device, t.host, t.count * sizeof(float), cudaMemcpyHostToDevice, e->stream),
                     "copying an input to the GPU"))
        return PE_TRT_E_CUDA;
    }
    if (!e->context->enqueueV3(e->stream)) return fail(PE_TRT_E_INFER, "enqueueV3 failed: " + g_error);
    for (auto &t : e->tensors) {
      if (!t.is_input &&
          !cuda_call(cudaMemcpyAsync(t.host, t.device, t.count * sizeof(float), cudaMemcpyDeviceToHost, e->stream),
                     "copying an output from the GPU"))
        return PE_TRT_E_CUDA;
    }
    if (!cuda_call(cudaStreamSynchronize(e->stream), "cudaStreamSynchronize")) return PE_TRT_E_CUDA;
    return PE_TRT_OK;
  });
}

}  // extern "C"
