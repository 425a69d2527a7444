"""`ugn data import | info | subset | split | features`: native dataset -> manifest -> subject-level split manifests;
ridge feature tables of fingerprint manifests."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from unifiedgender.cli.options import old_output_option, pick_output

app = typer.Typer(no_args_is_help=True)

FORMATS = ("hagrid-derived", "imagefolder", "socofing", "utkface", "lfw", "11k-hands", "adience", "celeba")  # keep in step with IMPORTERS
Format = Enum("Format", {name: name for name in FORMATS}, type=str)  # a Choice, so shells can complete it


@app.command("import")
def import_command(
    fmt: Format = typer.Argument(..., metavar="FORMAT", help="Native dataset format."),
    source: Path = typer.Argument(..., help="The dataset folder."),
    output: Path = typer.Option(..., "-o", "--output", help="Manifest CSV to write."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT if it exists."),
    modality: Optional[str] = typer.Option(None, help="imagefolder: modality of every image (e.g. fluting_virtual)."),
    class_map: Optional[str] = typer.Option(
        None, help="imagefolder: extra class folders, e.g. 'FEM=female,HOM=male' (FEMALE/MALE, F/M, 0/1 built in)."),
    subject_pattern: Optional[str] = typer.Option(
        None, help="imagefolder: regex on the file name giving the subject id (group 'subject' or group 1)."),
    images: Optional[str] = typer.Option(
        None, help="adience: the crops to use, faces or aligned (default: the folder present; faces when both are)."),
) -> None:
    """Import a native dataset into a manifest CSV (one row per image), with duplicate-content groups."""
    from unifiedgender.cli.render import print_import_report
    from unifiedgender.data.importers import import_dataset
    from unifiedgender.data.manifest import write_manifest
    from unifiedgender.errors import UserError

    if output.exists() and not overwrite:
        raise UserError(f"{output} already exists; pass --overwrite or choose another -o path")
    result, duplicates = import_dataset(fmt.value, source, modality=modality, class_map=class_map,
                                        subject_pattern=subject_pattern, images=images)
    write_manifest(result.frame, output, overwrite=overwrite)
    print_import_report(result, duplicates, output)


@app.command("info")
def info_command(manifest: Path = typer.Argument(..., help="Manifest CSV.")) -> None:
    """Images and subjects per gender, modality and demographic group."""
    from unifiedgender.cli.render import print_table
    from unifiedgender.data.info import manifest_tables
    from unifiedgender.data.manifest import read_manifest

    df = read_manifest(manifest)
    for title, table in manifest_tables(df):
        print_table(table, title=f"{manifest.name}: {title}")


@app.command("subset")
def subset_command(
    manifests: list[Path] = typer.Argument(..., help="Manifest CSV(s); several are concatenated (e.g. hands + faces)."),
    output: Path = typer.Option(..., "-o", "--output", help="Manifest CSV to write."),
    per_subject: int = typer.Option(0, "--per-subject", help="At most this many images per subject (0: no cap)."),
    max_subjects: int = typer.Option(0, "--max-subjects", help="At most this many subjects (0: all)."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same subset on any machine."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT if it exists."),
) -> None:
    """Deterministic subsample: cap images per subject (e.g. LFW's 530 of one person) and/or the number of subjects."""
    from unifiedgender.data.manifest import read_manifest, write_manifest
    from unifiedgender.data.subset import concat_manifests, subset_manifest

    df = concat_manifests([read_manifest(m) for m in manifests])
    kept = subset_manifest(df, per_subject=per_subject, max_subjects=max_subjects, seed=seed)
    write_manifest(kept, output, overwrite=overwrite)
    typer.echo(
        f"kept {len(kept)} of {len(df)} images, {kept['subject_id'].nunique()} of {df['subject_id'].nunique()} subjects -> {output}"
    )


@app.command("split")
def split_command(
    manifest: Path = typer.Argument(..., help="Manifest CSV."),
    ratios: Optional[str] = typer.Option(
        None, help="train,val or train,val,test fractions summing to 1 [default: 0.8,0.2]; with --by-column, "
                   "train,val of the rows outside the test fold."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same split."),
    output: Optional[Path] = typer.Option(None, "-o", "--output",
                                          help="Folder for train.csv, val.csv[, test.csv] (default: <manifest>_split/)."),
    by_column: Optional[str] = typer.Option(
        None, "--by-column", help="Split by this column: its values name the sides (e.g. CelebA's split), or "
                                  "with --test-fold/--folds they are folds (e.g. Adience's fold)."),
    test_fold: Optional[str] = typer.Option(None, "--test-fold", help="With --by-column: the value that is the test side."),
    folds: bool = typer.Option(False, "--folds", help="With --by-column: every value once as the test side, "
                                                      "written to OUTDIR/fold_<value>/."),
    outdir_old: Optional[Path] = old_output_option("--outdir"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing split files."),
) -> None:
    """Split by subject (and duplicate-content group), stratified by gender and modality; deterministic per seed.
    With --by-column, the manifest's own partition or folds give the sides, kept subject-exclusive."""
    from unifiedgender.cli.render import print_table
    from unifiedgender.data.manifest import read_manifest
    from unifiedgender.data.split import parse_ratios, split_manifest, split_table, split_warnings, write_splits
    from unifiedgender.errors import UserError

    outdir = pick_output(output, outdir_old, "--outdir")
    parsed = parse_ratios(ratios or "0.8,0.2")
    target = outdir if outdir is not None else manifest.with_name(f"{manifest.stem}_split")
    if by_column is None:
        if test_fold is not None or folds:
            raise UserError("--test-fold and --folds need --by-column COLUMN (e.g. --by-column fold)")
        df = read_manifest(manifest)
        parts = split_manifest(df, parsed, seed)
        written = write_splits(parts, target, overwrite=overwrite)
        print_table(split_table(parts), title=f"Subject-level split (seed {seed}, ratios {ratios or '0.8,0.2'})")
        for warning in split_warnings(parts):
            typer.secho(f"warning: {warning}", err=True, fg=typer.colors.YELLOW)
    else:
        from unifiedgender.data.folds import fold_splits, split_by_column, write_fold_splits

        if test_fold is not None and folds:
            raise UserError("--test-fold K writes one split, --folds all of them; pass one")
        if len(parsed) != 2 and (test_fold is not None or folds):
            raise UserError(f"--ratios '{ratios}': the test side is the fold; give train,val fractions such as 0.8,0.2")
        if ratios is not None and test_fold is None and not folds:
            raise UserError(f"--ratios does not apply to --by-column {by_column} alone: its values give every side")
        df = read_manifest(manifest)
        if folds:
            splits = fold_splits(df, by_column, parsed, seed)
            written = write_fold_splits(splits, target, overwrite=overwrite)
        else:
            splits = {test_fold or "": split_by_column(df, by_column, test_fold, parsed, seed)}
            written = write_splits(splits[test_fold or ""].parts, target, overwrite=overwrite)
        for fold, split in splits.items():
            title = f"{by_column} = {fold} as test (train/val by subject, seed {seed})" if fold else f"split by {by_column}"
            print_table(split_table(split.parts), title=title)
            for warning in split_warnings(split.parts):
                typer.secho(f"warning: {warning}", err=True, fg=typer.colors.YELLOW)
            if split.removed:
                typer.echo(f"removed to keep subjects on one side: {split.removed_subjects} subjects, "
                           + ", ".join(f"{n} {side} images" for side, n in split.removed.items()))
            if split.unassigned:
                typer.echo(f"left out: {split.unassigned} rows with a blank {by_column}")
    for path in written:
        typer.echo(f"wrote {path}")


@app.command("features")
def features_command(
    manifest: Path = typer.Argument(..., help="Manifest CSV of fingerprint images."),
    output: Path = typer.Option(..., "-o", "--output", help="Feature table CSV to write."),
    workers: int = typer.Option(2, "--workers", min=1, help="Threads computing features."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT if it exists."),
) -> None:
    """Ridge features per fingerprint image (frequency, density, ridge/valley widths, orientation, spectrum) as a CSV."""
    from unifiedgender.data.manifest import read_manifest
    from unifiedgender.errors import UserError
    from unifiedgender.fingerprints.features import feature_columns, ridge_feature_table, write_feature_table

    if output.exists() and not overwrite:
        raise UserError(f"{output} already exists; pass --overwrite or choose another -o path")
    table = ridge_feature_table(read_manifest(manifest), workers=workers)
    write_feature_table(table, output, overwrite=overwrite)
    failures = table.failures
    typer.echo(f"{len(table.frame) - len(failures)} of {len(table.frame)} images -> "
               f"{len(feature_columns(table.frame))} ridge features each -> {output}")
    for path, reason in list(failures.items())[:10]:
        typer.echo(f"  skipped {path}: {reason}")
    if len(failures) > 10:
        typer.echo(f"  ... and {len(failures) - 10} more (status column of {output})")
