"""SAM2 point-prompt cropping (the finger-fluting study's recipe) and its mask post-processing.

`sam` loads the predictor from an official checkpoint, `prompts` places the points, `postprocess` turns a mask
into a box, `pipeline` crops folders and manifests, `preview` draws what was kept.
"""
