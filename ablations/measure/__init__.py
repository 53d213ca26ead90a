"""Measurements other than training: parameters and MACs (`complexity`), inference and training
throughput (`throughput`), our training loop against the conventional one (`train_speed`),
each planned run's step (`step_speed`), runs at once (`runs_at_once`), the streaming loader
(`loader_speed`) and Fig. 7's layer responses (`responses`)."""
