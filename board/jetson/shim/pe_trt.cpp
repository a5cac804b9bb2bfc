// pe_trt.cpp: the TensorRT shim of pe-sentinel, implementing src/engine/tensorrt/pe_trt.h against
// TensorRT 8.5 (JetPack 5.1) or 10.x (JetPack 6.x). Build it ON the Jetson with build.sh; it was
// never compiled on the development machine (no TensorRT there) and has not yet run anywhere:
// see docs/engines.md.
//
// One code path for both versions: tensors by name (getNbIOTensors / getIOTensorName /
// getTensorIOMode / getTensorShape), setTensorAddress and enqueueV3, all present since 8.5; the
// bindings API (getNbBindings, enqueueV2, bindingIndex) is removed in 10 and not used. Differences
// handled with NV_TENSORRT_MAJOR: the explicit-batch network flag (required in 8, deprecated and
// default in 10). INT8 is explicit quantization only (Q/DQ layers in the ONNX model); the INT8
// calibrator classes (deprecated in 10.1, gone in 11) are never used.
#include "pe_trt.h"

#include <NvInfer.h>
#include <NvOnnxParser.h>
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace {

thread_local std::string g_error;

int fail(int code, const std::string &msg) {
  g_error = msg;
  return code;
}

class Logger : public nvinfer1::ILogger {
 public:
  void log(Severity severity, const char *msg) noexcept override {
    if (severity <= Severity::kWARNING) std::fprintf(stderr, "[TensorRT] %s\n", msg);
    if (severity <= Severity::kERROR) g_error = msg;
  }
};

Logger g_logger;

template <typename T>
struct Destroy {
  void operator()(T *p) const { delete p; }
};
template <typename T>
using Ptr = std::unique_ptr<T, Destroy<T>>;

bool cuda_ok(cudaError_t e, const char *what) {
  if (e == cudaSuccess) return true;
  g_error = std::string(what) + ": " + cudaGetErrorString(e);
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

std::string version_string() {
  std::ostringstream s;
  s << NV_TENSORRT_MAJOR << "." << NV_TENSORRT_MINOR << "." << NV_TENSORRT_PATCH;
  return s.str();
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

extern "C" {

int pe_trt_abi_version(void) { return PE_TRT_ABI_VERSION; }

const char *pe_trt_version(void) {
  static const std::string v = version_string();
  return v.c_str();
}

const char *pe_trt_gpu_name(void) {
  static const std::string name = [] {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) return std::string();
    std::ostringstream s;
    s << prop.name << " (sm_" << prop.major << prop.minor << ")";
    return s.str();
  }();
  return name.c_str();
}

const char *pe_trt_last_error(void) { return g_error.c_str(); }

int pe_trt_build(const void *onnx, size_t onnx_len, int precision, const char *timing_cache, void **plan,
                 size_t *plan_len) {
  if (!onnx || !plan || !plan_len) return fail(PE_TRT_E_ARGUMENT, "null argument to pe_trt_build");
  Ptr<nvinfer1::IBuilder> builder(nvinfer1::createInferBuilder(g_logger));
  if (!builder) return fail(PE_TRT_E_BUILD, "createInferBuilder failed: " + g_error);
#if NV_TENSORRT_MAJOR >= 10
  const uint32_t flags = 0;  // explicit batch is the only mode in 10
#else
  const uint32_t flags = 1U << static_cast<uint32_t>(nvinfer1::NetworkDefinitionCreationFlag::kEXPLICIT_BATCH);
#endif
  Ptr<nvinfer1::INetworkDefinition> network(builder->createNetworkV2(flags));
  Ptr<nvonnxparser::IParser> parser(nvonnxparser::createParser(*network, g_logger));
  if (!parser->parse(onnx, onnx_len)) {
    std::string msg = "ONNX parser:";
    for (int i = 0; i < parser->getNbErrors(); i++) msg += std::string(" ") + parser->getError(i)->desc();
    return fail(PE_TRT_E_BUILD, msg);
  }
  Ptr<nvinfer1::IBuilderConfig> config(builder->createBuilderConfig());
  config->setMemoryPoolLimit(nvinfer1::MemoryPoolType::kWORKSPACE, size_t(1) << 30);
  if (precision == PE_TRT_INT8_QDQ) {
    bool qdq = false;
    for (int i = 0; i < network->getNbLayers(); i++)
      if (network->getLayer(i)->getType() == nvinfer1::LayerType::kQUANTIZE) qdq = true;
    if (!qdq)
      return fail(PE_TRT_E_UNSUPPORTED,
                  "INT8 asked for a model without Q/DQ nodes; only explicit quantization is supported");
    config->setFlag(nvinfer1::BuilderFlag::kINT8);
    config->setFlag(nvinfer1::BuilderFlag::kFP16);  // layers left unquantized may run in FP16
  } else if (precision == PE_TRT_FP16) {
    config->setFlag(nvinfer1::BuilderFlag::kFP16);
  } else if (precision != PE_TRT_FP32) {
    return fail(PE_TRT_E_ARGUMENT, "unknown precision");
  }
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

void pe_trt_free(void *buffer) { std::free(buffer); }

int pe_trt_load(const void *plan, size_t plan_len, pe_trt_engine **out) {
  if (!plan || !out) return fail(PE_TRT_E_ARGUMENT, "null argument to pe_trt_load");
  auto e = std::make_unique<pe_trt_engine>();
  e->runtime.reset(nvinfer1::createInferRuntime(g_logger));
  if (!e->runtime) return fail(PE_TRT_E_PLAN, "createInferRuntime failed: " + g_error);
  e->engine.reset(e->runtime->deserializeCudaEngine(plan, plan_len));
  if (!e->engine) return fail(PE_TRT_E_PLAN, "cannot deserialize the plan: " + g_error);
  e->context.reset(e->engine->createExecutionContext());
  if (!e->context) return fail(PE_TRT_E_CUDA, "createExecutionContext failed: " + g_error);
  if (!cuda_ok(cudaStreamCreate(&e->stream), "cudaStreamCreate")) return PE_TRT_E_CUDA;
  for (int i = 0; i < e->engine->getNbIOTensors(); i++) {
    Tensor t;
    t.name = e->engine->getIOTensorName(i);
    t.is_input = e->engine->getTensorIOMode(t.name.c_str()) == nvinfer1::TensorIOMode::kINPUT;
    t.dims = e->engine->getTensorShape(t.name.c_str());
    if (e->engine->getTensorDataType(t.name.c_str()) != nvinfer1::DataType::kFLOAT)
      return fail(PE_TRT_E_UNSUPPORTED, "tensor " + t.name + " is not float32; export the model with float32 I/O");
    t.count = count_of(t.dims);
    if (t.count > 0) {
      if (!cuda_ok(cudaMalloc(&t.device, t.count * sizeof(float)), "cudaMalloc")) return PE_TRT_E_CUDA;
      if (!e->context->setTensorAddress(t.name.c_str(), t.device))
        return fail(PE_TRT_E_CUDA, "setTensorAddress failed for " + t.name);
    }
    e->tensors.push_back(t);
  }
  *out = e.release();
  return PE_TRT_OK;
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
  for (auto &t : e->tensors) {
    if (t.name == name) {
      if (count != t.count) return fail(PE_TRT_E_ARGUMENT, "buffer size does not match tensor " + t.name);
      t.host = host;
      return PE_TRT_OK;
    }
  }
  return fail(PE_TRT_E_ARGUMENT, std::string("no tensor named ") + name);
}

int pe_trt_infer(pe_trt_engine *e) {
  if (!e) return fail(PE_TRT_E_ARGUMENT, "null engine");
  for (auto &t : e->tensors) {
    if (!t.host) return fail(PE_TRT_E_INFER, "tensor " + t.name + " has no host buffer bound");
    if (t.is_input &&
        !cuda_ok(cudaMemcpyAsync(t.device, t.host, t.count * sizeof(float), cudaMemcpyHostToDevice, e->stream),
                 "copying an input to the GPU"))
      return PE_TRT_E_CUDA;
  }
  if (!e->context->enqueueV3(e->stream)) return fail(PE_TRT_E_INFER, "enqueueV3 failed: " + g_error);
  for (auto &t : e->tensors) {
    if (!t.is_input &&
        !cuda_ok(cudaMemcpyAsync(t.host, t.device, t.count * sizeof(float), cudaMemcpyDeviceToHost, e->stream),
                 "copying an output from the GPU"))
      return PE_TRT_E_CUDA;
  }
  if (!cuda_ok(cudaStreamSynchronize(e->stream), "cudaStreamSynchronize")) return PE_TRT_E_CUDA;
  return PE_TRT_OK;
}

}  // extern "C"
