"""The pipeline's stages, each a reconciler: "for every file in folder X not yet handled, handle it"."""
