"""Building a layer: assemble the tree, add the extension, zip it reproducibly."""
