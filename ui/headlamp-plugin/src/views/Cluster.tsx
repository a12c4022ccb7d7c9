import { SectionBox, SimpleTable } from '@kinvolk/headlamp-plugin/lib/CommonComponents';
import { Box, LinearProgress, Typography } from '@mui/material';
import React from 'react';
import { useNodes, usePods } from '../data';
import { NodeLike, PodLike, PoolRow, poolRows } from '../logic';
import { ErrorState, Guard } from './common';

// ClusterView is GPU capacity and use per node pool, as `kubectl kiln doctor` groups them.
export function ClusterView() {
  const nodes = useNodes<NodeLike>();
  const pods = usePods<PodLike>(undefined);
  if (pods.error && !nodes.error) {
    return (
      <SectionBox title="GPU pools">
        <ErrorState error={pods.error} what="Pods" />
      </SectionBox>
    );
  }
  const rows = nodes.items && pods.items ? poolRows(nodes.items, pods.items) : null;
  const total = (rows ?? []).reduce((n, r) => n + r.capacity, 0);
  const used = (rows ?? []).reduce((n, r) => n + r.used, 0);
  return (
    <SectionBox title="GPU pools">
      <Guard
        items={nodes.error ? null : rows}
        error={nodes.error}
        what="GPU nodes"
        how="No schedulable node advertises nvidia.com/gpu: add GPU nodes and the NVIDIA device plugin, then run kubectl kiln doctor."
      >
        {r => (
          <>
            <Typography sx={{ mb: 1 }} data-testid="kiln-gpu-total">
              {used} of {total} GPUs in use on {r.reduce((n, x) => n + x.nodes, 0)} nodes
            </Typography>
            <SimpleTable
              columns={[
                { label: 'Pool', getter: (x: PoolRow) => x.pool },
                { label: 'Nodes', getter: (x: PoolRow) => x.nodes },
                { label: 'GPUs per node', getter: (x: PoolRow) => x.gpusPerNode },
                { label: 'In use', getter: (x: PoolRow) => `${x.used} / ${x.capacity}` },
                {
                  label: 'Use',
                  getter: (x: PoolRow) => (
                    <Box sx={{ width: 160 }}>
                      <LinearProgress
                        variant="determinate"
                        value={x.capacity ? (100 * x.used) / x.capacity : 0}
                      />
                    </Box>
                  ),
                },
              ]}
              data={r}
            />
          </>
        )}
      </Guard>
    </SectionBox>
  );
}
