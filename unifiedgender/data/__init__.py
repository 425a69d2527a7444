"""Data: manifests, importers of native dataset formats, subject-level split, download, image reading."""
