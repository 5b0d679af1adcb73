// The Function App on Flex Consumption: Linux, Python 3.11, deployment package and storage through the
// user-assigned identity, HTTPS only with TLS 1.2 and FTPS off, the app settings main.bicep lists.
param name string
param location string
param tags object
param planId string
param identityId string
param deploymentContainerUrl string
param maximumInstanceCount int
param instanceMemoryMB int
param alwaysReadyHttpInstances int
@description('Name -> value; Key Vault references resolve through the identity (keyVaultReferenceIdentity).')
param appSettings object

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_17: Twilio and mobile apps do not present client certificates; they sign (X-Twilio-Signature) or send a function key and Bearer token
  // checkov:skip=CKV_AZURE_222: Twilio and the mobile apps reach the functions over the internet
  // checkov:skip=CKV_AZURE_213: no health check: its pings would keep a scale-to-zero app's instance running and billed
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales its own instances (maximumInstanceCount); there is no instance count to set on the plan
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    serverFarmId: planId
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: [for setting in items(appSettings): { name: setting.key, value: setting.value }]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        alwaysReady: (alwaysReadyHttpInstances > 0) ? [ { name: 'http', instanceCount: alwaysReadyHttpInstances } ] : []
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

output name string = site.name
output baseUrl string = 'https://${site.properties.defaultHostName}'
