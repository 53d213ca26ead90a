"""ImageNet-size data, streamed from files instead of decoded into memory: the on-disk layouts
(`layouts`, `devkit`), the image index (`index`), the paper's and torchvision's augmentation
(`augment`), image decoding (`decoding`), the streaming loader (`streaming`, with `prefetch`
moving its batches to the device) and a run's data (`prepare`). Imported only by runs that
stream."""
