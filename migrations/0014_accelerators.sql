-- Pools describe their accelerator: the vendor beside the model (`gpu_series`), the
-- partition profiles its devices can be cut into (MIG), and how its devices are linked.
-- A request for one vendor's device (`nvidia.com/gpu`) is never granted another's, so a
-- GPU pool must say whose it is.
ALTER TABLE pools
    ADD COLUMN gpu_vendor text,
    ADD COLUMN gpu_partitions text[] NOT NULL DEFAULT '{}',
    ADD COLUMN gpu_interconnect text[] NOT NULL DEFAULT '{}';

-- Pools reported before vendors existed: the vendor of the models the broker knows
-- (BrokerCore's `AcceleratorModels`, compared without case), `other` for the rest.
UPDATE pools SET gpu_vendor = CASE
    WHEN upper(gpu_series) IN ('K80', 'P4', 'P40', 'P100', 'V100', 'T4', 'A2', 'A10', 'A10G', 'A16', 'A30',
        'A40', 'A100', 'A800', 'RTXA6000', 'L4', 'L20', 'L40', 'L40S', 'RTX6000ADA', 'H100', 'H200', 'H800',
        'H20', 'GH200', 'B200', 'B300', 'GB200') THEN 'nvidia'
    WHEN upper(gpu_series) IN ('MI210', 'MI250', 'MI250X', 'MI300X', 'MI300A', 'MI325X', 'MI355X') THEN 'amd'
    WHEN upper(gpu_series) IN ('GAUDI', 'GAUDI2', 'GAUDI3', 'MAX1100', 'MAX1550') THEN 'intel'
    WHEN upper(gpu_series) IN ('INFERENTIA', 'INFERENTIA2', 'TRAINIUM', 'TRAINIUM2') THEN 'aws'
    WHEN upper(gpu_series) IN ('TPUV4', 'TPUV5E', 'TPUV5P', 'TPUV6E') THEN 'google'
    WHEN upper(gpu_series) IN ('ASCEND910', 'ASCEND910B', 'ASCEND310P') THEN 'huawei'
    ELSE 'other' END
WHERE compute_class = 'gpu';

ALTER TABLE pools
    ADD CONSTRAINT pools_gpu_vendor_known CHECK (
        gpu_vendor IN ('nvidia', 'amd', 'intel', 'aws', 'google', 'huawei', 'other')),
    -- Like the other accelerator fields (migration 4): the gpu class and nothing else.
    ADD CONSTRAINT pools_accelerator_only_for_gpu CHECK (
        CASE WHEN compute_class = 'gpu' THEN gpu_vendor IS NOT NULL
             ELSE gpu_vendor IS NULL AND gpu_partitions = '{}' AND gpu_interconnect = '{}'
        END);
