//! The row-restricted paths of the convolution agree with the full computation: inference on a
//! subset of rows, training with idle rows in batch norm, and the hierarchical block's kept rows.

use aa_rgconv::{fused, Activation, HierarchicalBlock, HierarchicalEdges, RelationalEdges, RelationalGraphConv};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

fn states(n: usize, d: usize, seed: f32) -> Tensor {
    let v: Vec<f32> = (0..n * d).map(|i| (i as f32 * 0.37 + seed).sin() * 1.5).collect();
    Tensor::from_vec(v, (n, d), &Device::Cpu).unwrap()
}

#[test]
fn idle_rows_equal_the_full_range() {
    let dev = Device::Cpu;
    // Nodes 0..4 receive edges among themselves; nodes 4..9 are idle (no input, no messages).
    let edges = RelationalEdges::new(9, &[(0, 1, 0), (2, 1, 1), (1, 3, 0), (3, 0, 2), (2, 0, 2)], 3, &dev).unwrap();
    let x = states(4, 6, 0.3);
    let mk = || {
        let map = VarMap::new();
        let conv =
            RelationalGraphConv::new(VarBuilder::from_varmap(&map, DType::F32, &dev), 6, 5, 3, true, Activation::Gelu)
                .unwrap();
        (map, conv)
    };
    let (m1, full) = mk();
    let (m2, idle) = mk();
    // Same weights in both.
    for (k, v) in m1.data().lock().unwrap().iter() {
        m2.data().lock().unwrap()[k].set(v.as_tensor()).unwrap();
    }
    let a = full.forward_rows(&x, &edges, 0..9, true).unwrap().narrow(0, 0, 4).unwrap();
    let b = idle.forward_rows_idle(&x, &edges, 0..4, 5, true).unwrap();
    assert_eq!(b.dims(), &[4, 5]);
    assert!(max_diff(&a, &b) < 1e-5, "{}", max_diff(&a, &b));
    // Running statistics too (the bias comes back into the running mean).
    let stats = |map: &VarMap| {
        let d = map.data().lock().unwrap();
        (d["batch_norm.running_mean"].as_tensor().clone(), d["batch_norm.running_var"].as_tensor().clone())
    };
    let ((rm1, rv1), (rm2, rv2)) = (stats(&m1), stats(&m2));
    assert!(max_diff(&rm1, &rm2) < 1e-6 && max_diff(&rv1, &rv2) < 1e-6);
    // The VarMap's own buffers carry the update (checkpoints are written from them).
    let (rm, _) = idle.batch_norm_stats().unwrap();
    assert!(max_diff(&rm, &rm2) == 0.0);
    assert!(rm2.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0, "running mean moved");
}

#[test]
fn inference_on_a_row_subset_equals_the_full_rows() {
    let dev = Device::Cpu;
    let edges = RelationalEdges::new(6, &[(0, 4, 0), (1, 4, 1), (2, 5, 0), (3, 5, 0), (4, 5, 1)], 2, &dev).unwrap();
    let map = VarMap::new();
    let conv =
        RelationalGraphConv::new(VarBuilder::from_varmap(&map, DType::F32, &dev), 3, 4, 2, false, Activation::Relu)
            .unwrap();
    let x = states(6, 3, 1.1);
    let full = conv.forward_rows(&x, &edges, 0..6, false).unwrap();
    let part = conv.forward_rows(&x, &edges, 4..6, false).unwrap();
    assert!(max_diff(&full.narrow(0, 4, 2).unwrap(), &part) < 1e-6);
    // A destination outside the requested rows is an error, not a silent drop.
    assert!(conv.forward_rows(&x, &edges, 5..6, false).is_err());
}

#[test]
fn merge_rows_forward_and_backward() {
    let dev = Device::Cpu;
    let a = Var::from_tensor(&states(3, 2, 0.0)).unwrap();
    let b = Var::from_tensor(&states(5, 2, 2.0)).unwrap();
    let m = fused::merge_rows(a.as_tensor(), b.as_tensor(), 2).unwrap();
    let want =
        Tensor::cat(&[&a.as_tensor().narrow(0, 0, 2).unwrap(), &b.as_tensor().narrow(0, 2, 3).unwrap()], 0).unwrap();
    assert_eq!(max_diff(&m, &want), 0.0);
    let w = states(5, 2, 5.0);
    let grads = (m * &w).unwrap().sum_all().unwrap().backward().unwrap();
    let ga = grads.get(a.as_tensor()).unwrap();
    let gb = grads.get(b.as_tensor()).unwrap();
    let zero = |r| Tensor::zeros((r, 2), DType::F32, &dev).unwrap();
    assert_eq!(max_diff(&ga, &Tensor::cat(&[&w.narrow(0, 0, 2).unwrap(), &zero(1)], 0).unwrap()), 0.0);
    assert_eq!(max_diff(&gb, &Tensor::cat(&[&zero(2), &w.narrow(0, 2, 3).unwrap()], 0).unwrap()), 0.0);
}

#[test]
fn hierarchical_block_inference_keeps_only_needed_rows() {
    // 2 units then 4 atoms; atom bonds, atom→unit membership, one unit link.
    let dev = Device::Cpu;
    let e = HierarchicalEdges::new(
        6,
        2,
        &[(2, 3, 0), (3, 2, 0), (4, 5, 1), (5, 4, 1)],
        &[(2, 0, 2), (3, 0, 2), (4, 1, 2), (5, 1, 2)],
        &[(0, 1, 1), (1, 0, 1)],
        3,
        &dev,
    )
    .unwrap();
    // Wrong kinds are refused.
    assert!(HierarchicalEdges::new(6, 2, &[(0, 3, 0)], &[], &[], 3, &dev).is_err());
    let map = VarMap::new();
    let vb = VarBuilder::from_varmap(&map, DType::F32, &dev);
    let conv = |p: &str| RelationalGraphConv::new(vb.pp(p), 4, 4, 3, true, Activation::Gelu).unwrap();
    let block = HierarchicalBlock { atom: conv("a"), cross: conv("c"), unit: conv("u") };
    let x = states(6, 4, 0.7);
    let fast = block.forward(&x, &e, false).unwrap();
    // The same block computed the long way: every conv on every row, masks by kind.
    let h1 = block.atom.forward_rows(&x, &e.atom, 0..6, false).unwrap();
    let in2 = Tensor::cat(&[&x.narrow(0, 0, 2).unwrap(), &h1.narrow(0, 2, 4).unwrap()], 0).unwrap();
    let h2 = block.cross.forward_rows(&in2, &e.cross, 0..6, false).unwrap();
    let in3 =
        Tensor::cat(&[&h2.narrow(0, 0, 2).unwrap(), &Tensor::zeros((4, 4), DType::F32, &dev).unwrap()], 0).unwrap();
    let h3 = block.unit.forward_rows(&in3, &e.unit, 0..6, false).unwrap();
    let slow = Tensor::cat(&[&h3.narrow(0, 0, 2).unwrap(), &h1.narrow(0, 2, 4).unwrap()], 0).unwrap();
    assert!(max_diff(&fast, &slow) < 1e-6);
}

#[test]
fn fused_relational_linear_equals_candle_ops() {
    // The fused CPU f32 op against the candle-op path (taken here for f64): values and every
    // gradient, for a row range with and without self-loop inputs.
    let dev = Device::Cpu;
    let edges =
        RelationalEdges::new(7, &[(0, 1, 0), (2, 1, 1), (4, 3, 0), (5, 3, 0), (6, 2, 2), (1, 2, 1)], 3, &dev).unwrap();
    for (rows, n_in) in [(0..7, 7), (1..5, 7), (0..9, 7usize)] {
        let x32 = Var::from_tensor(&states(n_in, 4, 0.9)).unwrap();
        let w32 = Var::from_tensor(&states(5, 12, 1.7)).unwrap();
        let s32 = Var::from_tensor(&states(5, 5, 2.3)).unwrap();
        let plan = edges.plan_for(n_in, rows.clone()).unwrap();
        let to64 = |v: &Var| Var::from_tensor(&v.as_tensor().to_dtype(DType::F64).unwrap()).unwrap();
        let (x64, w64, s64) = (to64(&x32), to64(&w32), to64(&s32));
        let y32 = fused::relational_linear(x32.as_tensor(), w32.as_tensor(), s32.as_tensor(), &plan).unwrap();
        let y64 = fused::relational_linear(x64.as_tensor(), w64.as_tensor(), s64.as_tensor(), &plan).unwrap();
        assert!(max_diff(&y32, &y64.to_dtype(DType::F32).unwrap()) < 1e-5);
        let wt = states(rows.len(), 5, 3.1);
        let g32 = (y32 * &wt).unwrap().sum_all().unwrap().backward().unwrap();
        let g64 = (y64 * wt.to_dtype(DType::F64).unwrap()).unwrap().sum_all().unwrap().backward().unwrap();
        for (a, b) in [(&x32, &x64), (&w32, &w64), (&s32, &s64)] {
            let ga = g32.get(a.as_tensor()).unwrap();
            let gb = g64.get(b.as_tensor()).unwrap().to_dtype(DType::F32).unwrap();
            assert!(max_diff(ga, &gb) < 1e-4, "{}", max_diff(ga, &gb));
        }
    }
}
