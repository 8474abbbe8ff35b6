//! The GlycanAA encoder (Xu et al., "GlycanAA / PreGlycanAA", arXiv 2506.01376), exactly as the
//! official code builds it on TorchDrug: a node-type embedding, blocks of hierarchical
//! relational convolutions (atom–atom, atom→monosaccharide, monosaccharide–monosaccharide; no
//! residual), the concatenation of every block's output, and a mean+max readout over the
//! monosaccharide nodes. Weight names are the official state-dict keys (`embedding.weight`,
//! `atom_layers.0.linear.weight`, …), so a converted checkpoint loads unchanged.
//!
//! Differences from the official code: relations without edges are skipped instead of
//! multiplying zero blocks of the `[out, 89·in]` weight, and edges are grouped once per batch.

use aa_graph::kernels::{scatter_max, scatter_mean};
use aa_rgconv::{Activation, HierarchicalBlock, HierarchicalEdges, RelationalEdges, RelationalGraphConv};
use candle_core::{Device, Result, Tensor, D};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::compat::{CompatGraph, CompatVocab};

/// Which nodes the graph readout pools.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadoutNodes {
    /// Monosaccharide nodes only (GlycanAA).
    Mono,
    /// All nodes (the GlycanAA-AN ablation).
    All,
}

/// Layer layout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// GlycanAA: atom, atom→monosaccharide and monosaccharide convolutions per block
    /// (`atom_layers.i`, `cross_layers.i`, `mono_layers.i`).
    #[default]
    Hierarchical,
    /// GlycanAA-WP/SP and the monosaccharide-level RGCN: one convolution per layer over every
    /// edge of the graph (`hidden_layers.i`).
    Flat,
}

/// Model configuration; field names follow the official YAML (`configs/pretrain/GlycanAA`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GlycanAAConfig {
    /// Node-type vocabulary: units + 83 atomic numbers (210 officially).
    pub num_unit: usize,
    /// Relation slots: links + 4 bond types + membership (89 officially).
    pub num_relation: usize,
    /// Embedding width (must equal `hidden_dims[0]`).
    pub input_dim: usize,
    /// Width of each block.
    pub hidden_dims: Vec<usize>,
    /// BatchNorm after each convolution.
    pub batch_norm: bool,
    /// Activation after each convolution.
    pub activation: Activation,
    /// Concatenate every block's output (384 = 3·128 officially) instead of the last only.
    pub concat_hidden: bool,
    /// Readout pools monosaccharides or all nodes.
    pub readout_type: ReadoutNodes,
    /// Hierarchical blocks (GlycanAA) or one convolution per layer (ablations, RGCN).
    #[serde(default)]
    pub variant: Variant,
    /// All-atom featurisation only ([`GlycanAABatch::from_molecules_with`]): link every unit to
    /// its `k` nearest units by anchor-atom distance (GearNet-style spatial edges, one more
    /// relation) when the graph has coordinates. `None` (the default, and the paper): no
    /// spatial edges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_knn: Option<usize>,
}

impl GlycanAAConfig {
    /// The paper's configuration: 210 node types, 89 relations, three blocks of 128, BatchNorm,
    /// GELU, concatenated hidden states, mean+max readout over monosaccharides.
    pub fn paper() -> Self {
        GlycanAAConfig {
            num_unit: 210,
            num_relation: 89,
            input_dim: 128,
            hidden_dims: vec![128, 128, 128],
            batch_norm: true,
            activation: Activation::Gelu,
            concat_hidden: true,
            readout_type: ReadoutNodes::Mono,
            variant: Variant::Hierarchical,
            unit_knn: None,
        }
    }

    /// Fills `num_unit` / `num_relation` given as 0 from `vocab`, and fails when a given value
    /// does not match it.
    pub fn sized_for(&mut self, vocab: &CompatVocab) -> Result<()> {
        if self.num_unit == 0 {
            self.num_unit = vocab.num_node_types();
        }
        if self.num_relation == 0 {
            self.num_relation = vocab.num_relations();
        }
        if (self.num_unit, self.num_relation) != (vocab.num_node_types(), vocab.num_relations()) {
            candle_core::bail!(
                "model.num_unit/num_relation are {}/{}, the vocabulary gives {}/{}",
                self.num_unit,
                self.num_relation,
                vocab.num_node_types(),
                vocab.num_relations()
            );
        }
        Ok(())
    }

    /// Width of the node features (384 for the paper).
    pub fn node_dim(&self) -> usize {
        if self.concat_hidden {
            self.hidden_dims.iter().sum()
        } else {
            *self.hidden_dims.last().unwrap_or(&self.input_dim)
        }
    }

    /// Width of the graph embedding (mean ‖ max: 768 for the paper).
    pub fn graph_dim(&self) -> usize {
        2 * self.node_dim()
    }
}

/// A batch in the model's layout: node types, the three edge sets, and which nodes are
/// monosaccharides of which glycan. Nodes are laid out units first — every glycan's
/// monosaccharides (glycan by glycan), then every glycan's atoms; [`GlycanAABatch::order`]
/// maps the inputs' node order to batch rows.
#[derive(Clone, Debug)]
pub struct GlycanAABatch {
    /// Node type ids `[N]`.
    pub node_type: Tensor,
    /// Edge sets and the atom mask.
    pub edges: HierarchicalEdges,
    /// Every edge (atom–atom, atom↔monosaccharide, monosaccharide–monosaccharide), for the
    /// flat variant.
    pub all_edges: RelationalEdges,
    /// Indices of monosaccharide nodes `[M]`.
    pub mono_nodes: Tensor,
    /// Glycan index of each monosaccharide node `[M]`.
    pub mono_graph: Tensor,
    /// Glycan index of every node `[N]`.
    pub node_graph: Tensor,
    /// Batch position of every input node, glycan by glycan in each glycan's own node order
    /// `[N]`: `all_node_feature.index_select(&order, 0)` lists the nodes as the inputs did.
    pub order: Tensor,
    /// Number of glycans.
    pub num_graphs: usize,
}

impl GlycanAABatch {
    /// Collates official-featurisation graphs (see [`crate::compat`]).
    pub fn from_compat(graphs: &[CompatGraph], vocab: &CompatVocab, device: &Device) -> Result<Self> {
        Self::collate(&graphs.iter().collect::<Vec<_>>(), vocab, device, false)
    }

    /// [`GlycanAABatch::from_compat`] on borrowed graphs (no copies for a batch drawn from a
    /// larger set).
    pub fn from_compat_refs(graphs: &[&CompatGraph], vocab: &CompatVocab, device: &Device) -> Result<Self> {
        Self::collate(graphs, vocab, device, false)
    }

    /// Collates only the monosaccharide nodes and their links: the input of the
    /// monosaccharide-level RGCN baseline.
    pub fn from_compat_units_only(graphs: &[&CompatGraph], vocab: &CompatVocab, device: &Device) -> Result<Self> {
        Self::collate(graphs, vocab, device, true)
    }

    /// Collates any all-atom graphs — glycans built from IUPAC ([`crate::GlycanMolecule`]),
    /// proteins and glycoproteins read from structure files — in one node and relation
    /// vocabulary ([`molecule_unit_type`], [`molecule_relation`]): units are typed by
    /// monosaccharide core or amino acid, atoms by `molecule_units() + Z`; relations are the
    /// glycosidic link types, peptide, disulfide and other covalent unit links, the spatial
    /// unit kNN (unused here, see [`GlycanAABatch::from_molecules_with`]), then
    /// single/double/triple/aromatic bonds, then membership. Linkage atoms and modifications
    /// are present as atoms, unlike the official featurisation. Unit features come out in each
    /// graph's unit order, graph after graph.
    pub fn from_molecules(graphs: &[&aa_graph::HeteroGraph], device: &Device) -> Result<Self> {
        Self::from_molecules_with(graphs, None, device)
    }

    /// [`GlycanAABatch::from_molecules`], plus, with `unit_knn = Some(k)`, directed edges from
    /// each unit's `k` nearest units (anchor atoms; units without an anchor or graphs without
    /// coordinates get none) in the spatial relation ([`molecule_spatial_relation`]).
    pub fn from_molecules_with(
        graphs: &[&aa_graph::HeteroGraph],
        unit_knn: Option<usize>,
        device: &Device,
    ) -> Result<Self> {
        let as_compat: Vec<CompatGraph> = graphs.iter().map(|g| molecule_compat(g, unit_knn)).collect();
        Self::collate(&as_compat.iter().collect::<Vec<_>>(), &molecule_vocab(), device, false)
    }

    fn collate(graphs: &[&CompatGraph], vocab: &CompatVocab, device: &Device, units_only: bool) -> Result<Self> {
        let nu = vocab.units.len() as u32;
        let nr = vocab.num_relations();
        // Batch layout: every glycan's monosaccharides, then every glycan's atoms (the
        // hierarchical block's units-first convention). `position[g][k]` is where node `k` of
        // glycan `g` lands.
        let num_units: usize = graphs.iter().map(|g| g.node_type.iter().filter(|&&t| t < nu).count()).sum();
        let mut next_unit = 0u32;
        let mut next_atom = num_units as u32;
        let mut positions = Vec::with_capacity(graphs.len());
        for g in graphs {
            let kept = if units_only { g.num_units.min(g.node_type.len()) } else { g.node_type.len() };
            let pos: Vec<u32> = g.node_type[..kept]
                .iter()
                .map(|&t| {
                    let slot = if t < nu { &mut next_unit } else { &mut next_atom };
                    *slot += 1;
                    *slot - 1
                })
                .collect();
            positions.push(pos);
        }
        let n = next_atom as usize;
        let mut node_type = vec![0u32; n];
        let mut node_graph = vec![0u32; n];
        let mut order = Vec::with_capacity(n);
        let (mut atom_e, mut cross_e, mut mono_e, mut all_e) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (gi, (g, pos)) in graphs.iter().zip(&positions).enumerate() {
            for (k, &p) in pos.iter().enumerate() {
                node_type[p as usize] = g.node_type[k];
                node_graph[p as usize] = gi as u32;
                order.push(p);
            }
            let is_atom = |k: u32| g.node_type[k as usize] >= nu;
            for &[s, d, r] in &g.edges {
                let (Some(&ps), Some(&pd)) = (pos.get(s as usize), pos.get(d as usize)) else {
                    continue; // an atom dropped by `units_only`
                };
                let e = (ps, pd, r);
                all_e.push(e);
                match (is_atom(s), is_atom(d)) {
                    (true, true) => atom_e.push(e),
                    (true, false) => cross_e.push(e),
                    (false, false) => mono_e.push(e),
                    (false, true) => {} // unit→atom edges are not used by GlycanAA
                }
            }
        }
        let mono_graph = node_graph[..num_units].to_vec();
        let vec_u32 = |v: Vec<u32>| {
            let len = v.len();
            Tensor::from_vec(v, len, device)
        };
        Ok(GlycanAABatch {
            edges: HierarchicalEdges::new(n, num_units, &atom_e, &cross_e, &mono_e, nr, device)?,
            all_edges: RelationalEdges::new(n, &all_e, nr, device)?,
            node_type: vec_u32(node_type)?,
            mono_nodes: vec_u32((0..num_units as u32).collect())?,
            mono_graph: vec_u32(mono_graph)?,
            node_graph: vec_u32(node_graph)?,
            order: vec_u32(order)?,
            num_graphs: graphs.len(),
        })
    }
}

/// Number of amino-acid unit types (`Unit::type_id` 0–19 of residues, in the protein front
/// end's order).
const AMINO_ACID_TYPES: u32 = 20;

/// Unit-type slots of the true-molecule featurisation: every core of `residue::CORES`, one for
/// a monosaccharide of unknown core, the 20 amino acids, one for any other unit.
pub fn molecule_units() -> usize {
    crate::residue::CORES.len() + 1 + AMINO_ACID_TYPES as usize + 1
}

/// The true-molecule featurisation of one graph in the layout of the official one
/// ([`CompatGraph`]: units first, then atoms, `(src, dst, relation)` edges both ways), in the
/// node and relation vocabulary of [`molecule_vocab`]; with `unit_knn = Some(k)`, directed
/// edges from each unit's `k` nearest units by anchor atom (graphs without coordinates get
/// none).
pub fn molecule_compat(g: &aa_graph::HeteroGraph, unit_knn: Option<usize>) -> CompatGraph {
    let nu = molecule_units() as u32;
    let bond = MOLECULE_LINK_RELATIONS;
    let units = g.units.len() as u32;
    let mut node_type: Vec<u32> = g.units.iter().map(molecule_unit_type).collect();
    node_type.extend(g.atoms.iter().map(|a| nu + (a.element.atomic_number() as u32).min(82)));
    let mut edges = Vec::new();
    for l in &g.unit_links {
        let r = molecule_relation(&l.kind);
        edges.push([l.src, l.dst, r]);
        edges.push([l.dst, l.src, r]);
    }
    for b in &g.bonds {
        let r = bond + b.order.index() as u32;
        edges.push([units + b.a, units + b.b, r]);
        edges.push([units + b.b, units + b.a, r]);
    }
    for (i, a) in g.atoms.iter().enumerate() {
        edges.push([a.unit, units + i as u32, bond + 4]);
        edges.push([units + i as u32, a.unit, bond + 4]);
    }
    if let (Some(k), Some(anchors)) = (unit_knn, g.anchor_positions()) {
        let with: Vec<u32> = (0..units).filter(|&u| anchors[u as usize].is_some()).collect();
        let points: Vec<[f32; 3]> = with.iter().filter_map(|&u| anchors[u as usize]).collect();
        let near = aa_graph::neighbors::knn(&points, k);
        for (i, &u) in with.iter().enumerate() {
            for &j in near.neighbors(i) {
                edges.push([with[j as usize], u, molecule_spatial_relation()]);
            }
        }
    }
    // `cumsum` describes the official layout (atoms grouped per residue); the model does not
    // read it, and true molecules are not laid out that way.
    CompatGraph { node_type, edges, num_units: g.units.len(), cumsum: Vec::new() }
}

/// The node and relation vocabulary of [`molecule_compat`] (names are slot numbers): what
/// [`GlycanAABatch::from_compat_refs`] needs to collate true-molecule graphs.
pub fn molecule_vocab() -> CompatVocab {
    CompatVocab {
        units: (0..molecule_units()).map(|i| i.to_string()).collect(),
        links: (0..MOLECULE_LINK_RELATIONS).map(|i| i.to_string()).collect(),
    }
}

/// Node type of a unit in the true-molecule featurisation: monosaccharides by core
/// (`Unit::type_id`; out-of-range ids → the unknown-core slot), amino-acid residues after the
/// sugars, every other unit in the last slot.
pub fn molecule_unit_type(u: &aa_graph::Unit) -> u32 {
    let cores = crate::residue::CORES.len() as u32;
    match u.kind {
        aa_graph::UnitKind::Monosaccharide => u.type_id.min(cores),
        aa_graph::UnitKind::Residue if u.type_id < AMINO_ACID_TYPES => cores + 1 + u.type_id,
        _ => cores + 1 + AMINO_ACID_TYPES,
    }
}

/// Unit↔unit relation slots: glycosidic link types, then peptide, disulfide, other covalent,
/// spatial kNN.
const MOLECULE_LINK_RELATIONS: u32 = crate::molecule::NUM_LINK_TYPES + 4;

/// Relation id of a unit link in the true-molecule featurisation, from its kind (not from
/// `UnitLink::type_id`, which front ends fill differently): glycosidic links by
/// [`crate::molecule::link_type_id`], then peptide, disulfide and any other covalent link.
pub fn molecule_relation(kind: &aa_graph::UnitLinkKind) -> u32 {
    let links = crate::molecule::NUM_LINK_TYPES;
    match kind {
        aa_graph::UnitLinkKind::Glycosidic { anomer, donor_position, acceptor_position, .. } => {
            crate::molecule::link_type_id(*anomer, *donor_position, *acceptor_position)
        }
        aa_graph::UnitLinkKind::Peptide => links,
        aa_graph::UnitLinkKind::Disulfide => links + 1,
        aa_graph::UnitLinkKind::Covalent => links + 2,
    }
}

/// Relation slots of the true-molecule featurisation: unit↔unit relations (links and spatial
/// kNN) + 4 bond orders + membership.
pub fn molecule_relations() -> usize {
    MOLECULE_LINK_RELATIONS as usize + 5
}

/// Relation id of the spatial unit-kNN edges (after the unit-link relations).
pub fn molecule_spatial_relation() -> u32 {
    crate::molecule::NUM_LINK_TYPES + 3
}

impl GlycanAAConfig {
    /// The paper's widths on the true-molecule featurisation (its own node and relation slots).
    pub fn paper_on_molecules() -> Self {
        GlycanAAConfig {
            num_unit: molecule_units() + 83,
            num_relation: molecule_relations(),
            ..GlycanAAConfig::paper()
        }
    }
}

/// Outputs of the encoder.
#[derive(Clone, Debug)]
pub struct GlycanAAOutput {
    /// Glycan embeddings `[B, 2·node_dim]` (mean ‖ max).
    pub graph_feature: Tensor,
    /// Monosaccharide node features `[M, node_dim]`.
    pub node_feature: Tensor,
    /// Every node's features `[N, node_dim]`, in batch order (units first; see
    /// [`GlycanAABatch::order`]).
    pub all_node_feature: Tensor,
    /// Every block's (or layer's) output `[N, hidden_dims[i]]`, in batch order.
    pub hiddens: Vec<Tensor>,
}

#[derive(Debug)]
enum Layers {
    Hierarchical(Vec<HierarchicalBlock>),
    Flat(Vec<RelationalGraphConv>),
}

/// The GlycanAA encoder (and its ablations).
#[derive(Debug)]
pub struct GlycanAA {
    embedding: Tensor,
    layers: Layers,
    config: GlycanAAConfig,
}

impl GlycanAA {
    /// Loads (or, from a `VarMap`, creates) the weights under their official names.
    pub fn new(vb: VarBuilder, config: &GlycanAAConfig) -> Result<Self> {
        if config.hidden_dims.first() != Some(&config.input_dim) {
            candle_core::bail!(
                "input_dim {} must equal hidden_dims[0] {:?}",
                config.input_dim,
                config.hidden_dims.first()
            );
        }
        let embedding = vb.get_with_hints(
            (config.num_unit, config.input_dim),
            "embedding.weight",
            Init::Randn { mean: 0.0, stdev: 1.0 },
        )?;
        let mut dims = vec![config.input_dim];
        dims.extend(&config.hidden_dims);
        let conv = |name: &str, i: usize| {
            RelationalGraphConv::new(
                vb.pp(format!("{name}.{i}")),
                dims[i],
                dims[i + 1],
                config.num_relation,
                config.batch_norm,
                config.activation,
            )
        };
        let layers = match config.variant {
            Variant::Hierarchical => Layers::Hierarchical(
                (0..config.hidden_dims.len())
                    .map(|i| {
                        Ok(HierarchicalBlock {
                            atom: conv("atom_layers", i)?,
                            cross: conv("cross_layers", i)?,
                            unit: conv("mono_layers", i)?,
                        })
                    })
                    .collect::<Result<_>>()?,
            ),
            Variant::Flat => {
                Layers::Flat((0..config.hidden_dims.len()).map(|i| conv("hidden_layers", i)).collect::<Result<_>>()?)
            }
        };
        Ok(GlycanAA { embedding, layers, config: config.clone() })
    }

    /// The configuration.
    pub fn config(&self) -> &GlycanAAConfig {
        &self.config
    }

    /// Encodes a batch; `train` selects batch statistics in BatchNorm.
    pub fn forward(&self, batch: &GlycanAABatch, train: bool) -> Result<GlycanAAOutput> {
        let mut x = self.embedding.index_select(&batch.node_type, 0)?;
        let mut hiddens = Vec::with_capacity(self.config.hidden_dims.len());
        match &self.layers {
            Layers::Hierarchical(blocks) => {
                for block in blocks {
                    x = block.forward(&x, &batch.edges, train)?;
                    hiddens.push(x.clone());
                }
            }
            Layers::Flat(convs) => {
                for conv in convs {
                    x = conv.forward(&x, &batch.all_edges, train)?;
                    hiddens.push(x.clone());
                }
            }
        }
        let all = if self.config.concat_hidden { Tensor::cat(&hiddens, D::Minus1)? } else { x.clone() };
        let node_feature = all.narrow(0, 0, batch.edges.num_units)?;
        let (pool, index) = match self.config.readout_type {
            ReadoutNodes::Mono => (&node_feature, &batch.mono_graph),
            ReadoutNodes::All => (&all, &batch.node_graph),
        };
        let mean = scatter_mean(pool, index, batch.num_graphs)?;
        let max = scatter_max(pool, index, batch.num_graphs)?;
        let graph_feature = Tensor::cat(&[mean, max], D::Minus1)?;
        Ok(GlycanAAOutput { graph_feature, node_feature, all_node_feature: all, hiddens })
    }
}
