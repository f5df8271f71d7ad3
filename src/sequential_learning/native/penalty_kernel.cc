// The consolidation penalty's per-step work in one pass over the parameters.
//
//   SeqlPenaltyAddToGradient(gradient, value, anchor, root, scale) -> (summed, penalty)
//     e       = root * (value - anchor)            root = sqrt(lambda * Omega)
//     summed  = gradient + scale * root * e        the task gradient plus lambda Omega (theta - anchor)
//     penalty = 1/2 sum(e^2)                       lambda/2 sum Omega (theta - anchor)^2
//
// TensorFlow's own ops need five (subtract, multiply, l2_loss, multiply, add), each a pass over
// memory; this kernel reads the four inputs once and writes the sum in place of the gradient
// where TensorFlow lets it. Built on first use by sequential_learning.native with the flags
// tf.sysconfig gives; float32 on CPU only (elsewhere the library uses TensorFlow's ops).
#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/threadpool.h"

namespace {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::TensorShapeUtils;
namespace errors = tensorflow::errors;
namespace shape_inference = tensorflow::shape_inference;

// Below this many elements one thread does the pass (waking others costs more than it saves).
constexpr int64_t kBlock = int64_t{1} << 20;
// Float partial sums over at most this many elements, then double. `o` may be `g` (written in
// place), so `g` is not restrict-qualified; each element is read before it is written.
constexpr int64_t kChunk = 4096;

double FusedPass(const float* g, const float* __restrict t, const float* __restrict a,
                 const float* __restrict r, float* o, float scale, int64_t begin, int64_t end) {
  double sum = 0.0;
  for (int64_t lo = begin; lo < end; lo += kChunk) {
    const int64_t hi = std::min(end, lo + kChunk);
    float partial = 0.0f;
#pragma omp simd reduction(+ : partial)
    for (int64_t i = lo; i < hi; ++i) {
      const float e = r[i] * (t[i] - a[i]);
      o[i] = g[i] + scale * r[i] * e;
      partial += e * e;
    }
    sum += partial;
  }
  return sum;
}

class PenaltyAddToGradientOp : public OpKernel {
 public:
  explicit PenaltyAddToGradientOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& gradient = ctx->input(0);
    const Tensor& value = ctx->input(1);
    const Tensor& anchor = ctx->input(2);
    const Tensor& root = ctx->input(3);
    const Tensor& scale = ctx->input(4);
    OP_REQUIRES(ctx,
                value.shape() == gradient.shape() && anchor.shape() == gradient.shape() &&
                    root.shape() == gradient.shape(),
                errors::InvalidArgument(
                    "gradient, value, anchor and root must have one shape; got ",
                    gradient.shape().DebugString(), ", ", value.shape().DebugString(), ", ",
                    anchor.shape().DebugString(), ", ", root.shape().DebugString()));
    OP_REQUIRES(ctx, TensorShapeUtils::IsScalar(scale.shape()),
                errors::InvalidArgument("scale must be a scalar, got shape ",
                                        scale.shape().DebugString()));
    Tensor* summed = nullptr;
    OP_REQUIRES_OK(ctx,
                   ctx->forward_input_or_allocate_output({0}, 0, gradient.shape(), &summed));
    Tensor* penalty = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({}), &penalty));
    const float* g = gradient.flat<float>().data();
    const float* t = value.flat<float>().data();
    const float* a = anchor.flat<float>().data();
    const float* r = root.flat<float>().data();
    float* o = summed->flat<float>().data();
    const float s = scale.scalar<float>()();
    const int64_t n = gradient.NumElements();
    double total = 0.0;
    if (n <= kBlock) {
      total = FusedPass(g, t, a, r, o, s, 0, n);
    } else {
      // Blocks run on TensorFlow's intra-op threads; their sums are added in block order, so
      // the value does not depend on which thread finished first.
      std::vector<double> parts((n + kBlock - 1) / kBlock, 0.0);
      const std::function<void(int64_t, int64_t)> work = [&](int64_t begin, int64_t end) {
        parts[begin / kBlock] = FusedPass(g, t, a, r, o, s, begin, end);
      };
      using Pool = tensorflow::thread::ThreadPool;
      ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(
          n, Pool::SchedulingParams(Pool::SchedulingStrategy::kFixedBlockSize, std::nullopt, kBlock),
          work);
      for (const double part : parts) total += part;
    }
    penalty->scalar<float>()() = static_cast<float>(0.5 * total);
  }
};

}  // namespace

REGISTER_OP("SeqlPenaltyAddToGradient")
    .Input("gradient: float")
    .Input("value: float")
    .Input("anchor: float")
    .Input("root: float")
    .Input("scale: float")
    .Output("summed: float")
    .Output("penalty: float")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->Scalar());
      return absl::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("SeqlPenaltyAddToGradient").Device(tensorflow::DEVICE_CPU),
                        PenaltyAddToGradientOp);
