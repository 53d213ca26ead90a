"""ImageNet-size data, streamed from files instead of decoded into memory (docs/imagenet.md).
Imported only by runs that stream."""
