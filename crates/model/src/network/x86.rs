//! The network's passes compiled twice more, with AVX2 + FMA and with AVX-512 (F, BW, VL)
//! enabled (x86-64 only: see `crate::cpu`). Each function is the portable one, inlined into a
//! `#[target_feature]` body.

use super::{Network, Seg};
use crate::layers::Shape;
use crate::trunk::{self, Lanes};

/// `forward`, `backward` and `eval_chunks` under the names given, compiled with `features`.
macro_rules! passes {
    ($features:literal: $forward:ident, $backward:ident, $eval_chunks:ident) => {
        #[target_feature(enable = $features)]
        pub(super) fn $forward(
            net: &mut Network,
            params: &[f32],
            segs: &mut [Seg<'_>],
            total: usize,
            train: bool,
            from: usize,
        ) {
            net.forward_impl(params, segs, total, train, from)
        }

        #[target_feature(enable = $features)]
        pub(super) fn $backward(
            net: &mut Network,
            params: &[f32],
            segs: &[(usize, usize)],
            grads: &mut [&mut [f32]],
            total: usize,
            g: &mut Vec<f32>,
            g2: &mut Vec<f32>,
        ) {
            net.backward_impl(params, segs, grads, total, g, g2)
        }

        #[target_feature(enable = $features)]
        #[allow(clippy::too_many_arguments)]
        pub(super) fn $eval_chunks(
            lanes: &Lanes,
            s: &mut trunk::Scratch,
            params: &[f32],
            state: &[f32],
            input: Shape,
            images: &[f32],
            width: usize,
            out: &mut [f32],
        ) {
            trunk::run_chunks(lanes, s, params, state, input, images, width, out)
        }
    };
}

passes!("avx2,fma": forward, backward, eval_chunks);
passes!("avx512f,avx512bw,avx512vl,avx2,fma": forward512, backward512, eval_chunks512);
