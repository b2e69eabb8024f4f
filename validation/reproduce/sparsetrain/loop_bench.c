/* The SparseTrain zero-skipping loop against the same loop without skipping, on the CPU it
 * runs on (AVX-512F, BMI1), with uniform random zeros as the authors' testers draw them.
 *
 * Per vector of 16 streamed fp32 values: vcmpps against zero, kmovw; per non-zero: tzcnt,
 * vbroadcastss, F FMAs with their weight vectors from memory into F zmm accumulators, blsr.
 * The reference ("dense") issues the same broadcasts and FMAs for all 16 values. Inputs are
 * cycled through NV / CH chunks so that the branch predictor cannot learn the zero pattern of
 * a chunk from the previous repetitions; WSETS weight sets (one per vector, cycled) put the
 * weights in L1 (1 set, 16 x F vectors) or beyond it; FMA_REPEAT 2 issues each FMA twice (see
 * fmas below). Prints one CSV row: fmas_per_nonzero, weight_sets, fma_repeat, sparsity,
 * dense_ns_per_vector, sparse_ns_per_vector (the best of `reps` interleaved runs of each). `loop_bench peak` prints 512-bit FMAs per ns of a pure FMA loop.
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef F
#define F 14
#endif
#ifndef WSETS
#define WSETS 1
#endif
#ifndef FMA_REPEAT
#define FMA_REPEAT 1
#endif
#define NV 16384
#define CH 2048

static float in[NV * 16] __attribute__((aligned(64)));
static float W[WSETS][16 * F * 16] __attribute__((aligned(64)));

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* FMA_REPEAT FMAs per multiply-add, on the same accumulator and weight vector: with 2, the
 * FMAs cost twice their issue slots while every other instruction stays, which is what a core
 * with half the FMA units per core does to the loop. */
static inline __m512 fmas(__m512 b, __m512 w, __m512 acc) {
  for (int r = 0; r < FMA_REPEAT; r++) acc = _mm512_fmadd_ps(b, w, acc);
  return acc;
}

static float sink_of(const __m512 *acc) {
  float s = 0;
  for (int j = 0; j < F; j++) s += _mm512_reduce_add_ps(acc[j]);
  return s;
}

__attribute__((noinline)) static float sparse(int v0) {
  __m512 acc[F];
  for (int j = 0; j < F; j++) acc[j] = _mm512_setzero_ps();
  const __m512 zero = _mm512_setzero_ps();
  for (int v = v0; v < v0 + CH; v++) {
    unsigned mask = _mm512_cmp_ps_mask(_mm512_load_ps(in + 16 * v), zero, _CMP_NEQ_UQ);
    const float *weights = W[v % WSETS];
    while (mask) {
      unsigned lane = _tzcnt_u32(mask);
      __m512 b = _mm512_set1_ps(in[16 * v + lane]);
      const float *w = weights + lane * F * 16;
#pragma GCC unroll 32
      for (int j = 0; j < F; j++) acc[j] = fmas(b, _mm512_load_ps(w + 16 * j), acc[j]);
      mask = _blsr_u32(mask);
    }
  }
  return sink_of(acc);
}

__attribute__((noinline)) static float dense(int v0) {
  __m512 acc[F];
  for (int j = 0; j < F; j++) acc[j] = _mm512_setzero_ps();
  for (int v = v0; v < v0 + CH; v++) {
    const float *weights = W[v % WSETS];
#pragma GCC unroll 16
    for (int lane = 0; lane < 16; lane++) {
      __m512 b = _mm512_set1_ps(in[16 * v + lane]);
      const float *w = weights + lane * F * 16;
#pragma GCC unroll 32
      for (int j = 0; j < F; j++) acc[j] = fmas(b, _mm512_load_ps(w + 16 * j), acc[j]);
    }
  }
  return sink_of(acc);
}

__attribute__((noinline)) static float peak(long n) {
  __m512 a[16];
  for (int j = 0; j < 16; j++) a[j] = _mm512_set1_ps((float)j);
  const __m512 b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(1e-3f);
  for (long i = 0; i < n; i++) {
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++) a[j] = _mm512_fmadd_ps(a[j], b, c);
  }
  float s = 0;
  for (int j = 0; j < 16; j++) s += _mm512_reduce_add_ps(a[j]);
  return s;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: loop_bench SPARSITY [REPS] | loop_bench peak\n");
    return 2;
  }
  volatile float sink = 0;
  if (!strcmp(argv[1], "peak")) {
    double best = 1e9;
    for (int r = 0; r < 50; r++) {
      double t0 = now();
      sink += peak(100000);
      double t = now() - t0;
      if (t < best) best = t;
    }
    printf("%.4f\n", 16 * 100000 / best / 1e9);
    return 0;
  }
  double s = atof(argv[1]);
  int reps = argc > 2 ? atoi(argv[2]) : 400;
  if (!(s >= 0 && s <= 1) || reps < 1) {
    fprintf(stderr, "loop_bench: sparsity must be in [0, 1] and reps >= 1\n");
    return 2;
  }
  srand(12345);
  for (int w = 0; w < WSETS; w++)
    for (int k = 0; k < 16 * F * 16; k++) W[w][k] = 1e-3f * (float)(k % 7);
  for (int k = 0; k < NV * 16; k++)
    in[k] = ((double)rand() / RAND_MAX) < s ? 0.0f : 1.0f + (float)(k % 5);
  double best_sparse = 1e9, best_dense = 1e9;
  for (int r = 0; r < reps; r++) {
    int v0 = CH * (r % (NV / CH));
    double t0 = now();
    sink += sparse(v0);
    double t1 = now();
    sink += dense(v0);
    double t2 = now();
    if (t1 - t0 < best_sparse) best_sparse = t1 - t0;
    if (t2 - t1 < best_dense) best_dense = t2 - t1;
  }
  printf("%d,%d,%d,%.2f,%.3f,%.3f\n", F, WSETS, FMA_REPEAT, s, 1e9 * best_dense / CH, 1e9 * best_sparse / CH);
  return 0;
}
