// Causal softmax attention in float32, forward and backward, as XLA FFI custom calls for
// XLA:CPU; built and registered by xpm_train/models/native.py, used by fast_ops.py.
//
// Each (batch, head) is one task; tasks run on all cores. A task copies its head into
// contiguous blocks, computes only the causal (lower-triangular) part of every product with
// a register-blocked kernel, and keeps the softmax weights for the backward pass.
#include <sched.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace {

typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));
typedef int32_t i16 __attribute__((vector_size(64)));
constexpr int W = 16;   // floats per vector
constexpr int RB = 6;   // rows per kernel call

inline v16 load(const float* p) { return *reinterpret_cast<const v16u*>(p); }
inline void store(float* p, v16 x) { *reinterpret_cast<v16u*>(p) = x; }
inline v16 splat(float x) { return v16{} + x; }

// C[r, 0:W*NV] = sum_k A[r*ars + k*aks] * B[k*ldb + 0:W*NV] for r < R.
template <int R, int NV>
inline void kernel(int K, const float* A, long ars, long aks, const float* B, long ldb,
                   float* C, long ldc) {
  v16 acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = splat(0);
  for (int k = 0; k < K; ++k) {
    v16 b[NV];
    for (int v = 0; v < NV; ++v) b[v] = load(B + k * ldb + v * W);
    for (int r = 0; r < R; ++r) {
      v16 a = splat(A[r * ars + k * aks]);
      for (int v = 0; v < NV; ++v) acc[r][v] += a * b[v];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) store(C + r * ldc + v * W, acc[r][v]);
}

template <int R>
inline void row_block(int K, const float* A, long ars, long aks, const float* B, long ldb,
                      float* C, long ldc, int N) {
  int c = 0;
  for (; c + 4 * W <= N; c += 4 * W)
    kernel<R, 4>(K, A, ars, aks, B + c, ldb, C + c, ldc);
  switch ((N - c) / W) {
    case 3: kernel<R, 3>(K, A, ars, aks, B + c, ldb, C + c, ldc); break;
    case 2: kernel<R, 2>(K, A, ars, aks, B + c, ldb, C + c, ldc); break;
    case 1: kernel<R, 1>(K, A, ars, aks, B + c, ldb, C + c, ldc); break;
    default: break;
  }
}

struct Range {
  int k0, k1;  // contraction
  int n;       // columns [0, n), a multiple of W
};

// For row blocks i of C (M rows): C[i, 0:n) = sum_{k in [k0, k1)} A[i, k] B[k, 0:n),
// with A[i, k] = A[i*ars + k*aks] and (k0, k1, n) = range(i, rows of the block).
template <typename RangeOf>
void matmul(int M, RangeOf range, const float* A, long ars, long aks, const float* B, long ldb,
            float* C, long ldc) {
  for (int i = 0; i < M; i += RB) {
    int r = std::min(RB, M - i);
    Range g = range(i, r);
    const float* a = A + i * ars + long(g.k0) * aks;
    const float* b = B + long(g.k0) * ldb;
    float* c = C + i * ldc;
    int K = g.k1 - g.k0;
    switch (r) {
      case 6: row_block<6>(K, a, ars, aks, b, ldb, c, ldc, g.n); break;
      case 5: row_block<5>(K, a, ars, aks, b, ldb, c, ldc, g.n); break;
      case 4: row_block<4>(K, a, ars, aks, b, ldb, c, ldc, g.n); break;
      case 3: row_block<3>(K, a, ars, aks, b, ldb, c, ldc, g.n); break;
      case 2: row_block<2>(K, a, ars, aks, b, ldb, c, ldc, g.n); break;
      default: row_block<1>(K, a, ars, aks, b, ldb, c, ldc, g.n); break;
    }
  }
}

// exp(x) for x <= 0: Cody-Waite range reduction and Cephes' degree-5 polynomial.
inline v16 exp_nonpositive(v16 x) {
  x = x < -87.0f ? splat(-87.0f) : x;
  const float round = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  v16 n = (x * 1.44269504088896341f + round) - round;
  v16 r = x - n * 0.693359375f + n * 2.12194440e-4f;
  v16 p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  i16 e = (__builtin_convertvector(n, i16) + 127) << 23;
  return p * (v16)e;  // 2^n, from its exponent bits
}

struct Dims {
  int B, T, H, D, TP;  // TP: T rounded up to W
  long at(int b, int t, int h) const { return ((long(b) * T + t) * H + h) * D; }
};

// Head h of batch b, (T, D) of a (B, T, H, D) array, into a contiguous block, times scale.
void gather(const Dims& d, const float* x, int b, int h, float* out, float scale) {
  for (int t = 0; t < d.T; ++t)
    for (int j = 0; j < d.D; ++j) out[t * d.D + j] = x[d.at(b, t, h) + j] * scale;
}
// The same, transposed to (D, TP) and zero-padded.
void gather_transposed(const Dims& d, const float* x, int b, int h, float* out) {
  std::memset(out, 0, sizeof(float) * d.D * d.TP);
  for (int t = 0; t < d.T; ++t)
    for (int j = 0; j < d.D; ++j) out[j * d.TP + t] = x[d.at(b, t, h) + j];
}
void scatter(const Dims& d, const float* in, int b, int h, float* x, float scale) {
  for (int t = 0; t < d.T; ++t)
    for (int j = 0; j < d.D; ++j) x[d.at(b, t, h) + j] = in[t * d.D + j] * scale;
}

// The cores this process may run on (a SLURM job's allocation, taskset), at most tasks.
int thread_count(int tasks) {
  int cores = int(std::thread::hardware_concurrency());
#ifdef __linux__
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0) cores = CPU_COUNT(&allowed);
#endif
  return std::max(1, std::min(cores, tasks));
}

// task(thread, i) for i < tasks, round robin over thread_count(tasks) threads.
template <typename Task>
void parallel(int tasks, Task task) {
  int threads = thread_count(tasks);
  auto work = [&](int id) {
    for (int i = id; i < tasks; i += threads) task(id, i);
  };
  std::vector<std::thread> pool;
  for (int id = 1; id < threads; ++id) pool.emplace_back(work, id);
  work(0);
  for (auto& t : pool) t.join();
}

// Softmax over s[0..i] in place; s[i+1..TP) set to zero.
void softmax_row(float* s, int i, int tp) {
  int n = i + 1, full = n / W * W;
  v16 maxes = splat(-INFINITY);
  for (int j = 0; j < full; j += W) {
    v16 x = load(s + j);
    maxes = x > maxes ? x : maxes;
  }
  float m = -INFINITY;
  for (int l = 0; l < W; ++l) m = std::max(m, maxes[l]);
  for (int j = full; j < n; ++j) m = std::max(m, s[j]);
  v16 sums = splat(0);
  for (int j = 0; j < full; j += W) {
    v16 e = exp_nonpositive(load(s + j) - m);
    store(s + j, e);
    sums += e;
  }
  float sum = 0;
  for (int l = 0; l < W; ++l) sum += sums[l];
  for (int j = full; j < n; ++j) {
    s[j] = std::exp(s[j] - m);
    sum += s[j];
  }
  v16 inv = splat(1.0f / sum);
  for (int j = 0; j < full; j += W) store(s + j, load(s + j) * inv);
  for (int j = full; j < n; ++j) s[j] *= inv[0];
  for (int j = n; j < tp; ++j) s[j] = 0;
}

// Keys seen by query rows [i, i + r): [0, i + r), padded to a vector.
inline int causal_end(const Dims& d, int i, int r) {
  return std::min(d.TP, (i + r + W - 1) / W * W);
}

// q, k, v, out: (B, T, H, D); probs: (B, H, T, TP) softmax weights, kept for the backward.
void attention_fwd(int B, int T, int H, int D, const float* q, const float* k, const float* v,
                   float* out, float* probs) {
  Dims d{B, T, H, D, (T + W - 1) / W * W};
  float scale = 1.0f / std::sqrt(float(D));
  std::vector<std::vector<float>> scratch(thread_count(B * H),
                                          std::vector<float>(size_t(4) * d.TP * D));
  parallel(B * H, [&](int id, int task) {
    int b = task / H, h = task % H;
    float *qs = scratch[id].data(), *kt = qs + d.TP * D, *vs = kt + d.TP * D, *o = vs + d.TP * D;
    gather(d, q, b, h, qs, scale);
    gather_transposed(d, k, b, h, kt);
    gather(d, v, b, h, vs, 1.0f);
    float* p = probs + long(task) * T * d.TP;
    matmul(T, [&](int i, int r) { return Range{0, D, causal_end(d, i, r)}; }, qs, D, 1, kt, d.TP,
           p, d.TP);
    for (int i = 0; i < T; ++i) softmax_row(p + long(i) * d.TP, i, d.TP);
    matmul(T, [&](int i, int r) { return Range{0, std::min(T, i + r), D}; }, p, d.TP, 1, vs, D,
           o, D);
    scatter(d, o, b, h, out, 1.0f);
  });
}

// Gradients dq, dk, dv (B, T, H, D) of the attention given dout and the forward's probs.
void attention_bwd(int B, int T, int H, int D, const float* q, const float* k, const float* v,
                   const float* out, const float* probs, const float* dout, float* dq, float* dk,
                   float* dv) {
  Dims d{B, T, H, D, (T + W - 1) / W * W};
  float scale = 1.0f / std::sqrt(float(D));
  size_t block = size_t(d.TP) * D;
  std::vector<std::vector<float>> scratch(thread_count(B * H),
                                          std::vector<float>(6 * block + size_t(T) * d.TP + T));
  parallel(B * H, [&](int id, int task) {
    int b = task / H, h = task % H;
    float *qs = scratch[id].data(), *ks = qs + block, *vt = ks + block, *go = vt + block;
    float *g = go + block, *g2 = g + block, *ds = g2 + block;
    float* delta = ds + size_t(T) * d.TP;
    gather(d, q, b, h, qs, scale);
    gather(d, k, b, h, ks, 1.0f);
    gather_transposed(d, v, b, h, vt);
    gather(d, dout, b, h, go, 1.0f);
    const float* p = probs + long(task) * T * d.TP;
    for (int i = 0; i < T; ++i) {  // sum_j p_ij dp_ij = dout_i . out_i (FlashAttention's delta)
      v16 s = splat(0);
      for (int j = 0; j < D; j += W) s += load(go + i * D + j) * load(out + d.at(b, i, h) + j);
      delta[i] = 0;
      for (int l = 0; l < W; ++l) delta[i] += s[l];
    }
    // dp = dout v^T, then ds = p (dp - delta) (the gradient of the scaled logits)
    matmul(T, [&](int i, int r) { return Range{0, D, causal_end(d, i, r)}; }, go, D, 1, vt, d.TP,
           ds, d.TP);
    for (int i = 0; i < T; ++i) {
      float* row = ds + long(i) * d.TP;
      const float* prow = p + long(i) * d.TP;
      int end = causal_end(d, i - i % RB, std::min(RB, T - (i - i % RB)));
      for (int j = 0; j < end; ++j) row[j] = prow[j] * (row[j] - delta[i]);
      for (int j = end; j < d.TP; ++j) row[j] = 0;
    }
    // dq = scale ds k
    matmul(T, [&](int i, int r) { return Range{0, std::min(T, i + r), D}; }, ds, d.TP, 1, ks, D,
           g, D);
    scatter(d, g, b, h, dq, scale);
    // dk = ds^T (scale q): key rows j see queries [j, T)
    matmul(T, [&](int j, int r) { return Range{j, T, D}; }, ds, 1, d.TP, qs, D, g, D);
    scatter(d, g, b, h, dk, 1.0f);
    // dv = p^T dout
    matmul(T, [&](int j, int r) { return Range{j, T, D}; }, p, 1, d.TP, go, D, g2, D);
    scatter(d, g2, b, h, dv, 1.0f);
  });
}

namespace ffi = xla::ffi;
using F32 = ffi::Buffer<ffi::F32>;
using F32Out = ffi::ResultBuffer<ffi::F32>;

ffi::Error check_qkv(const F32& q, const F32& k, const F32& v) {
  auto dims = q.dimensions();
  if (dims.size() != 4 || dims[3] % W != 0)
    return ffi::Error::InvalidArgument("attention: (batch, time, heads, head_dim) arrays with "
                                       "head_dim a multiple of 16 expected");
  for (const F32* x : {&k, &v}) {
    auto other = x->dimensions();
    if (other.size() != 4 || !std::equal(dims.begin(), dims.end(), other.begin()))
      return ffi::Error::InvalidArgument("attention: q, k and v must have the same shape");
  }
  return ffi::Error::Success();
}

ffi::Error forward(F32 q, F32 k, F32 v, F32Out out, F32Out probs) {
  if (ffi::Error error = check_qkv(q, k, v); error.failure()) return error;
  auto s = q.dimensions();
  attention_fwd(s[0], s[1], s[2], s[3], q.typed_data(), k.typed_data(), v.typed_data(),
                out->typed_data(), probs->typed_data());
  return ffi::Error::Success();
}

ffi::Error backward(F32 q, F32 k, F32 v, F32 out, F32 probs, F32 dout, F32Out dq, F32Out dk,
                    F32Out dv) {
  if (ffi::Error error = check_qkv(q, k, v); error.failure()) return error;
  auto s = q.dimensions();
  attention_bwd(s[0], s[1], s[2], s[3], q.typed_data(), k.typed_data(), v.typed_data(),
                out.typed_data(), probs.typed_data(), dout.typed_data(), dq->typed_data(),
                dk->typed_data(), dv->typed_data());
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(XpmAttentionForward, forward,
                              ffi::Ffi::Bind()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Ret<F32>()
                                  .Ret<F32>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(XpmAttentionBackward, backward,
                              ffi::Ffi::Bind()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Ret<F32>()
                                  .Ret<F32>()
                                  .Ret<F32>());
