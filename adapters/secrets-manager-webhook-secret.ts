import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  type SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';

/**
 * The webhook secret in Secrets Manager, as registration and rotation write it: the AWSCURRENT
 * value, and the AWSPENDING version a rotation stages before it is promoted. Values are passed
 * through, never logged or put in an error message.
 *
 * The staging-label contract (AWSCURRENT, AWSPENDING, AWSPREVIOUS) is Secrets Manager's "How
 * rotation works" and the AWS rotation template (aws-samples/aws-secrets-manager-rotation-lambdas,
 * SecretsManagerRotationTemplate/lambda_function.py).
 */
export interface SecretVersionInfo {
  readonly rotationEnabled: boolean;
  /** VersionId → its staging labels. */
  readonly versions: Readonly<Record<string, readonly string[]>>;
}

export interface WebhookSecretStore {
  /** The AWSCURRENT value; undefined when the secret has no value yet. */
  current(): Promise<string | undefined>;
  /** Stores a new AWSCURRENT version (the old one becomes AWSPREVIOUS). */
  putCurrent(value: string): Promise<void>;
  describe(): Promise<SecretVersionInfo>;
  /** The value of a version with this label; undefined when there is none. */
  version(versionId: string, stage: string): Promise<string | undefined>;
  putPending(versionId: string, value: string): Promise<void>;
  /** AWSCURRENT onto `versionId`, off `fromVersionId`. */
  promote(versionId: string, fromVersionId: string): Promise<void>;
}

export class SecretsManagerWebhookSecret implements WebhookSecretStore {
  constructor(
    private readonly client: SecretsManagerClient,
    readonly secretId: string,
  ) {}

  async current(): Promise<string | undefined> {
    return this.read({ VersionStage: 'AWSCURRENT' });
  }

  async putCurrent(value: string): Promise<void> {
    await this.client.send(
      new PutSecretValueCommand({
        SecretId: this.secretId,
        SecretString: value,
        VersionStages: ['AWSCURRENT'],
      }),
    );
  }

  async describe(): Promise<SecretVersionInfo> {
    const result = await this.client.send(new DescribeSecretCommand({ SecretId: this.secretId }));
    const versions: Record<string, readonly string[]> = {};
    for (const [id, stages] of Object.entries(result.VersionIdsToStages ?? {}))
      versions[id] = stages ?? [];
    return { rotationEnabled: result.RotationEnabled === true, versions };
  }

  version(versionId: string, stage: string): Promise<string | undefined> {
    return this.read({ VersionId: versionId, VersionStage: stage });
  }

  async putPending(versionId: string, value: string): Promise<void> {
    await this.client.send(
      new PutSecretValueCommand({
        SecretId: this.secretId,
        ClientRequestToken: versionId,
        SecretString: value,
        VersionStages: ['AWSPENDING'],
      }),
    );
  }

  async promote(versionId: string, fromVersionId: string): Promise<void> {
    await this.client.send(
      new UpdateSecretVersionStageCommand({
        SecretId: this.secretId,
        VersionStage: 'AWSCURRENT',
        MoveToVersionId: versionId,
        RemoveFromVersionId: fromVersionId,
      }),
    );
  }

  private async read(select: { VersionId?: string; VersionStage?: string }) {
    try {
      const result = await this.client.send(
        new GetSecretValueCommand({ SecretId: this.secretId, ...select }),
      );
      return result.SecretString;
    } catch (error) {
      if ((error as { name?: string }).name === 'ResourceNotFoundException') return undefined;
      throw error;
    }
  }
}
