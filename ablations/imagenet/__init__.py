"""ImageNet-size data, streamed from files instead of decoded into memory: the on-disk layouts
(`layouts`, `devkit`), the image index (`index`), the paper's and torchvision's augmentation
(`augment`), the streaming loader (`streaming`) and a run's data (`prepare`). Imported only by
runs that stream."""
