"""Minimal stand-in for Uni-Core (`unicore`, dptech-corp/Uni-Core) so the official Vabs-Net
modules import and run on CPU. Only the names the official `vabs.models.vabs_net`,
`vabs.models.layers`, `vabs.models.vabs_encoder` and
`vabs.data.protein_downstream_bindingsite_dataset` import are provided; each one's docstring
says which real object it replaces and why it is exact (or that it is import-only)."""
