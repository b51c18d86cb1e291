"""The image-editing track (paper Table 1).

``scenes`` (the mini-scale procedural edits), ``vq`` (a k-means patch tokenizer for the
mini scale), ``imgedit`` (paper-scale ImgEdit preparation), ``layout`` (the DiMOO-style
token sequence), ``codec`` (PNG bytes in DataFrames).
"""
