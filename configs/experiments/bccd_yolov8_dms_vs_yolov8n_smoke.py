# CI-sized version of bccd_yolov8_dms_vs_yolov8n.py: 8 train / 8 test images at 160x160, one
# seed, one epoch (2 iterations of batch 4) per phase. Checks the pipeline, not accuracy.
_base_ = ['./bccd_yolov8_dms_vs_yolov8n.py']
seeds = [0]
epochs = 2
search_epochs = 1
img_size = 160
batch_size = 4
train_images = 8
test_images = 8
checkpoint_interval = 1
log_interval = 1
warmup_iters = 1
latency = dict(repeats=3, warmup=1, threads=1)
