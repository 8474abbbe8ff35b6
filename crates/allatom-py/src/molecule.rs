//! `allatom.Glycan` (a glycan's true all-atom molecule) and `allatom.read_structure` (a
//! PDB/mmCIF file's chains, residues, glycans and coordinates), as lists and NumPy arrays.

use std::path::PathBuf;

use aa_graph::{BondOrder, HeteroGraph, UnitKind};
use glycan_aa::notation::Notation;
use numpy::{PyArray1, PyArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::{glycan_error, StructureError};

fn kind_name(k: UnitKind) -> &'static str {
    match k {
        UnitKind::Monosaccharide => "monosaccharide",
        UnitKind::Residue => "residue",
        UnitKind::Other => "other",
    }
}

fn order(o: BondOrder) -> f32 {
    match o {
        BondOrder::Single => 1.0,
        BondOrder::Double => 2.0,
        BondOrder::Triple => 3.0,
        BondOrder::Aromatic => 1.5,
    }
}

/// The atom, bond and unit arrays every graph has (shared by glycans and structures).
mod arrays {
    use super::*;

    pub fn atomic_numbers<'py>(py: Python<'py>, g: &HeteroGraph) -> Bound<'py, PyArray1<u8>> {
        PyArray1::from_vec(py, g.atoms.iter().map(|a| a.element.atomic_number()).collect())
    }

    pub fn elements(g: &HeteroGraph) -> Vec<&'static str> {
        g.atoms.iter().map(|a| a.element.symbol()).collect()
    }

    pub fn atom_names(g: &HeteroGraph) -> Vec<String> {
        g.atoms.iter().map(|a| a.name.clone()).collect()
    }

    pub fn atom_unit<'py>(py: Python<'py>, g: &HeteroGraph) -> Bound<'py, PyArray1<i64>> {
        PyArray1::from_vec(py, g.atoms.iter().map(|a| a.unit as i64).collect())
    }

    pub fn bonds<'py>(py: Python<'py>, g: &HeteroGraph) -> PyResult<Bound<'py, PyAny>> {
        let v: Vec<i64> = g.bonds.iter().flat_map(|b| [b.a as i64, b.b as i64]).collect();
        Ok(PyArray1::from_vec(py, v).reshape([g.bonds.len(), 2])?.into_any())
    }

    pub fn bond_orders<'py>(py: Python<'py>, g: &HeteroGraph) -> Bound<'py, PyArray1<f32>> {
        PyArray1::from_vec(py, g.bonds.iter().map(|b| order(b.order)).collect())
    }

    pub fn unit_links<'py>(py: Python<'py>, g: &HeteroGraph) -> PyResult<Bound<'py, PyAny>> {
        let v: Vec<i64> = g.unit_links.iter().flat_map(|l| [l.src as i64, l.dst as i64]).collect();
        Ok(PyArray1::from_vec(py, v).reshape([g.unit_links.len(), 2])?.into_any())
    }

    pub fn coordinates<'py>(py: Python<'py>, g: &HeteroGraph) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(p) = &g.positions else { return Ok(None) };
        let v: Vec<f32> = p.iter().flatten().copied().collect();
        Ok(Some(PyArray1::from_vec(py, v).reshape([p.len(), 3])?.into_any()))
    }
}

/// A glycan as its true all-atom molecule: `Glycan(text, format=None)` reads IUPAC-condensed,
/// WURCS 2.0, GlycoCT condensed and the loose forms researchers paste (IUPAC-extended, Greek
/// anomers, glycan-array short forms with spacers), detected unless `format` says which.
/// Heavy atoms, covalent bonds (the glycosidic oxygen shared), substituents as atoms.
#[pyclass(module = "allatom", frozen)]
pub struct Glycan {
    input: String,
    notation: Notation,
    glycan: glycan_aa::Glycan,
}

#[pymethods]
impl Glycan {
    #[new]
    #[pyo3(signature = (text, format=None))]
    fn new(py: Python<'_>, text: &str, format: Option<&str>) -> PyResult<Glycan> {
        let notation = match format {
            Some(f) => f.parse::<Notation>().map_err(PyValueError::new_err)?,
            None => Notation::detect(text),
        };
        let glycan =
            py.detach(|| glycan_aa::Glycan::parse_as(text, notation)).map_err(|e| glycan_error(py, text, &e))?;
        Ok(Glycan { input: text.to_string(), notation, glycan })
    }

    /// The string as given.
    #[getter]
    fn input(&self) -> &str {
        &self.input
    }

    /// The notation it was read in (`iupac`, `wurcs`, `glycoct`).
    #[getter]
    fn notation(&self) -> &'static str {
        self.notation.name()
    }

    /// Its IUPAC-condensed form.
    #[getter]
    fn iupac(&self) -> &str {
        &self.glycan.iupac
    }

    /// The spacer or aglycone a short form named at the reducing end (`Sp8`), not part of the
    /// molecule.
    #[getter]
    fn aglycone(&self) -> Option<&str> {
        self.glycan.aglycone.as_deref()
    }

    /// Molecular formula with hydrogens (Hill order).
    #[getter]
    fn formula(&self) -> String {
        self.glycan.molecule.graph.formula()
    }

    /// Assumptions made while building it (e.g. an unknown linkage position chosen).
    #[getter]
    fn flags(&self) -> Vec<String> {
        self.glycan.molecule.flags.clone()
    }

    /// The monosaccharides, in the graph's unit order.
    #[getter]
    fn units(&self) -> Vec<String> {
        self.glycan.molecule.graph.units.iter().map(|u| u.name.clone()).collect()
    }

    /// Glycosidic links `[links, 2]` between units (`src`, `dst` unit indices).
    #[getter]
    fn links<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        arrays::unit_links(py, &self.glycan.molecule.graph)
    }

    /// Heavy atoms' atomic numbers `[atoms]` (uint8).
    #[getter]
    fn atomic_numbers<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u8>> {
        arrays::atomic_numbers(py, &self.glycan.molecule.graph)
    }

    /// Heavy atoms' element symbols.
    #[getter]
    fn elements(&self) -> Vec<&'static str> {
        arrays::elements(&self.glycan.molecule.graph)
    }

    /// Heavy atoms' names (`C1`, `O5`, `N2`, …).
    #[getter]
    fn atom_names(&self) -> Vec<String> {
        arrays::atom_names(&self.glycan.molecule.graph)
    }

    /// The unit of each heavy atom `[atoms]`.
    #[getter]
    fn atom_unit<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        arrays::atom_unit(py, &self.glycan.molecule.graph)
    }

    /// Hydrogens on each heavy atom `[atoms]` (uint8).
    #[getter]
    fn hydrogens<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u8>> {
        PyArray1::from_vec(py, self.glycan.molecule.graph.atoms.iter().map(|a| a.implicit_h).collect())
    }

    /// Formal charge of each heavy atom `[atoms]` (int8).
    #[getter]
    fn charges<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i8>> {
        PyArray1::from_vec(py, self.glycan.molecule.graph.atoms.iter().map(|a| a.formal_charge).collect())
    }

    /// Heavy–heavy bonds `[bonds, 2]` (atom indices).
    #[getter]
    fn bonds<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        arrays::bonds(py, &self.glycan.molecule.graph)
    }

    /// Bond orders `[bonds]` (1, 2, 3; 1.5 aromatic).
    #[getter]
    fn bond_orders<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        arrays::bond_orders(py, &self.glycan.molecule.graph)
    }

    /// Number of rings.
    #[getter]
    fn rings(&self) -> usize {
        self.glycan.molecule.graph.ring_count()
    }

    /// Heavy atoms.
    fn __len__(&self) -> usize {
        self.glycan.molecule.graph.num_atoms()
    }

    fn __repr__(&self) -> String {
        format!("Glycan({:?}, {}, {} units)", self.glycan.iupac, self.formula(), self.glycan.molecule.graph.num_units())
    }
}

/// A structure file read into the all-atom graph: residues, monosaccharides and ligands as
/// units, covalent bonds, glycans with their attachment sites, coordinates.
#[pyclass(module = "allatom", frozen)]
pub struct Structure {
    path: PathBuf,
    s: protein_aa::Structure,
}

/// Reads a PDB or mmCIF file (`.gz` / `.bz2` too): `read_structure(path)` → `Structure`;
/// raises `StructureError` saying where and why when it cannot.
#[pyfunction]
pub fn read_structure(py: Python<'_>, path: PathBuf) -> PyResult<Structure> {
    let opts = protein_aa::StructureOptions { atom_knn: None, unit_knn: None, ..Default::default() };
    let s = py
        .detach(|| protein_aa::read_structure_file(&path, &opts))
        .map_err(|e| StructureError::new_err(e.to_string()))?;
    Ok(Structure { path, s })
}

#[pymethods]
impl Structure {
    /// The file.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// Chain identifiers, in file order.
    #[getter]
    fn chains(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for u in &self.s.graph.units {
            if let Some(l) = &u.label {
                if !out.contains(&l.chain) {
                    out.push(l.chain.clone());
                }
            }
        }
        out
    }

    /// Units (residues, monosaccharides, ligands) as dicts: `name`, `kind`, `chain`, `number`,
    /// `insertion`.
    #[getter]
    fn units<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for u in &self.s.graph.units {
            let d = PyDict::new(py);
            d.set_item("name", &u.name)?;
            d.set_item("kind", kind_name(u.kind))?;
            if let Some(l) = &u.label {
                d.set_item("chain", &l.chain)?;
                d.set_item("number", l.number)?;
                d.set_item("insertion", &l.insertion)?;
            }
            list.append(d)?;
        }
        Ok(list)
    }

    /// Amino-acid residues.
    #[getter]
    fn residues(&self) -> usize {
        self.s.residues
    }

    /// Glycans as dicts: `iupac`, `attached_to` (e.g. `ASN 90 chain A`, or None), `units`
    /// (unit indices in IUPAC order).
    #[getter]
    fn glycans<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for t in &self.s.glycans {
            let d = PyDict::new(py);
            d.set_item("iupac", &t.iupac)?;
            d.set_item("attached_to", &t.attached_to)?;
            d.set_item("units", t.iupac_order.clone())?;
            list.append(d)?;
        }
        Ok(list)
    }

    /// Heavy atoms' coordinates `[atoms, 3]` (float32, Å).
    #[getter]
    fn coordinates<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        arrays::coordinates(py, &self.s.graph)
    }

    /// Heavy atoms' atomic numbers `[atoms]` (uint8).
    #[getter]
    fn atomic_numbers<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u8>> {
        arrays::atomic_numbers(py, &self.s.graph)
    }

    /// Heavy atoms' element symbols.
    #[getter]
    fn elements(&self) -> Vec<&'static str> {
        arrays::elements(&self.s.graph)
    }

    /// Heavy atoms' names as the file gives them.
    #[getter]
    fn atom_names(&self) -> Vec<String> {
        arrays::atom_names(&self.s.graph)
    }

    /// The unit of each heavy atom `[atoms]`.
    #[getter]
    fn atom_unit<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        arrays::atom_unit(py, &self.s.graph)
    }

    /// B-factors `[atoms]` (float32).
    #[getter]
    fn b_factors<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        PyArray1::from_vec(py, self.s.b_factors.clone())
    }

    /// Covalent bonds `[bonds, 2]` (atom indices).
    #[getter]
    fn bonds<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        arrays::bonds(py, &self.s.graph)
    }

    /// Bond orders `[bonds]`.
    #[getter]
    fn bond_orders<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        arrays::bond_orders(py, &self.s.graph)
    }

    /// What the reader noticed (missing atoms, alternate locations kept, …).
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.s.warnings.clone()
    }

    /// Heavy atoms.
    fn __len__(&self) -> usize {
        self.s.graph.num_atoms()
    }

    fn __repr__(&self) -> String {
        format!(
            "Structure({:?}, {} chains, {} residues, {} glycans, {} atoms)",
            self.path.display().to_string(),
            self.s.chains,
            self.s.residues,
            self.s.glycans.len(),
            self.s.graph.num_atoms()
        )
    }
}
