// The Kiln kinds as the UI reads them, kept in one file so that changes to the Go types
// (api/v1alpha1) are made in one place. Only the fields the views show are listed.

export const GROUP = 'kiln.dev';
export const VERSION = 'v1alpha1';

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  observedGeneration?: number;
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  creationTimestamp?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface KilnObject<Spec, Status> {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: Spec;
  status?: Status;
}

// TrainingJob (api/v1alpha1/trainingjob_types.go).
export interface TrainingJobSpec {
  image: string;
  framework?: string;
  resources?: { gpus?: number; gpuResource?: string; cpu?: string; memory?: string };
  topology?: { nodes: number; processesPerNode: number };
  suspend?: boolean;
  queueName?: string;
}

export interface TrainingJobStatus {
  conditions?: Condition[];
  observedGeneration?: number;
  state?: string;
  shape?: {
    nodes: number;
    processesPerNode: number;
    gpusPerNode?: number;
    pool?: string;
    summary?: string;
    reason?: string;
  };
  attempt?: number;
  jobName?: string;
  restarts?: number;
  startTime?: string;
  completionTime?: string;
  active?: number;
  ready?: number;
  succeeded?: number;
  failed?: number;
  lastFailure?: { index?: number; reason?: string; message?: string };
  metrics?: Record<string, string>;
  latestCheckpoint?: string;
}

export type TrainingJob = KilnObject<TrainingJobSpec, TrainingJobStatus>;

// Sweep (api/v1alpha1/sweep_types.go on the sweep-kind branch).
export interface SweepSpec {
  parameters: {
    name: string;
    type: string;
    min?: string;
    max?: string;
    values?: string[];
  }[];
  objective: { metric: string; direction: 'minimize' | 'maximize'; goal?: string };
  algorithm?: string;
  maxTrials: number;
  parallelism?: number;
}

export interface SweepStatus {
  conditions?: Condition[];
  state?: string;
  trials?: number;
  running?: number;
  succeeded?: number;
  failed?: number;
  stopped?: number;
  bestTrial?: { name: string; index: number; parameters?: Record<string, string>; value: string };
}

export type Sweep = KilnObject<SweepSpec, SweepStatus>;

// Labels and annotations a Sweep puts on its trial TrainingJobs.
export const LABEL_SWEEP = 'kiln.dev/sweep';
export const LABEL_TRIAL_INDEX = 'kiln.dev/trial-index';
export const ANNOTATION_TRIAL_PARAMETERS = 'kiln.dev/trial-parameters';
export const ANNOTATION_TRIAL_STOPPED = 'kiln.dev/stopped';

// ModelServer (api/v1alpha1/modelserver_types.go on the modelserver branch).
export interface ModelSource {
  uri: string;
  format?: string;
}

export interface ModelServerSpec {
  model: ModelSource;
  runtime: { preset?: string; image?: string };
  resources?: { gpus?: number; gpuResource?: string };
  replicas?: { min?: number; max?: number };
  canary?: {
    model?: ModelSource;
    runtime?: { preset?: string; image?: string };
    trafficPercent: number;
  };
}

export interface TrackStatus {
  deployment?: string;
  modelURI?: string;
  replicas: number;
  readyReplicas: number;
}

export interface ModelServerStatus {
  conditions?: Condition[];
  url?: string;
  stable?: TrackStatus;
  canary?: TrackStatus;
  traffic?: { method?: string; stablePercent: number; canaryPercent: number; message?: string };
}

export type ModelServer = KilnObject<ModelServerSpec, ModelServerStatus>;

// Notebook (api/v1alpha1/notebook_types.go on the notebook branch).
export interface NotebookSpec {
  image?: string;
  resources?: { gpus?: number; gpuResource?: string };
  stopped?: boolean;
}

export interface NotebookStatus {
  conditions?: Condition[];
  state?: string;
  ready?: boolean;
  url?: string;
  lastActivity?: string;
}

export type Notebook = KilnObject<NotebookSpec, NotebookStatus>;

// Labels Kiln puts on what a TrainingJob creates.
export const LABEL_TRAININGJOB = 'kiln.dev/trainingjob';
export const ANNOTATION_COMPLETION_INDEX = 'batch.kubernetes.io/job-completion-index';
export const DEFAULT_GPU_RESOURCE = 'nvidia.com/gpu';

// The node labels that name a pool, most specific first (internal/placement/shape.go).
export const POOL_LABELS = [
  'cloud.google.com/gke-nodepool',
  'eks.amazonaws.com/nodegroup',
  'kubernetes.azure.com/agentpool',
  'karpenter.sh/nodepool',
  'node.kubernetes.io/instance-type',
  'nvidia.com/gpu.product',
];
