/**
 * teleport.storage as the backends read it. Declared here, below the config layer that parses it
 * (src/config/schema.ts checks that what it parses fits), so the store imports nothing above it.
 */
export type StorageConfig =
  | { type: 'sqlite'; path?: string | undefined }
  | {
      type: 'etcd';
      peers: string[];
      prefix: string;
      tls?: { ca_file?: string | undefined; cert_file?: string | undefined; key_file?: string | undefined } | undefined;
      username?: string | undefined;
      password?: string | undefined;
    };
